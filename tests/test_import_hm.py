"""The H&M importer on a small copy of the Kaggle layout: articles.csv (the real 25 columns),
customers.csv, transactions_train.csv (article ids without their leading zero) and images/0XX/."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers import import_dataset

ARTICLES_HEADER = (
    "article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
    "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,"
    "perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,perceived_colour_master_name,"
    "department_no,department_name,index_code,index_name,index_group_no,index_group_name,section_no,section_name,"
    "garment_group_no,garment_group_name,detail_desc"
)
ARTICLES = [
    '0108775015,0108775,Strap top,253,Vest top,Garment Upper body,1010016,Solid,09,Black,4,Dark,5,Black,1676,'
    'Jersey Basic,A,Ladieswear,1,Ladieswear,16,Womens Everyday Basics,1002,Jersey Basic,'
    'Jersey top with narrow shoulder straps.',
    '0108775044,0108775,Strap top,253,Vest top,Garment Upper body,1010016,Solid,10,White,3,Light,9,White,1676,'
    'Jersey Basic,A,Ladieswear,1,Ladieswear,16,Womens Everyday Basics,1002,Jersey Basic,'
    'Jersey top with narrow shoulder straps.',
    '0110065001,0110065,OP T-shirt (Idro),306,Bra,Underwear,1010016,Solid,09,Black,4,Dark,5,Black,1339,'
    'Clean Lingerie,B,Lingeries/Tights,1,Ladieswear,61,Womens Lingerie,1017,"Under-, Nightwear",'
    '"Microfibre T-shirt bra with underwired, moulded, lightly padded cups."',
    '0111586001,0111586,Shape Up 30 den 1p Tights,273,Leggings/Tights,Garment Lower body,1010016,Solid,09,Black,'
    '4,Dark,5,Black,3608,Tights basic,B,Lingeries/Tights,1,Ladieswear,62,"Womens Nightwear, Socks & Tigh",1021,'
    'Socks and Tights,Tights with built-in support to lift the bottom. 30 denier.',
    '0118458003,0118458,John WASHED,259,Shirt,Garment Upper body,1010017,Stripe,73,Dark Blue,4,Dark,2,Blue,4244,'
    'Shirt,F,Menswear,3,Menswear,21,Contemporary Casual,1011,"Shirts",',  # empty detail_desc
    '0176209023,0176209,Heavy Basic Jogger,272,Trousers,Garment Lower body,-1,Unknown,-1,Unknown,-1,Unknown,-1,'
    'Undefined,1722,Trousers,D,Divided,2,Divided,53,Divided Collection,1005,Jersey Fancy,'
    '"Joggers in sweatshirt fabric with an elasticated drawstring waist, side pockets and ribbed hems."',
]
IDS = ["0108775015", "0108775044", "0110065001", "0111586001", "0118458003", "0176209023"]


def customer(i: int) -> str:
    return hashlib.sha256(f"customer {i}".encode()).hexdigest()


# (t_dat, customer, article without its leading zero)
PURCHASES = [
    ("2018-09-20", 0, "108775015"),
    ("2018-09-20", 1, "110065001"),
    ("2018-09-21", 0, "111586001"),
    ("2018-09-21", 2, "118458003"),
    ("2018-09-21", 2, "176209023"),
    ("2018-09-21", 2, "108775044"),   # customer 2: three on one day: file order decides
    ("2018-09-22", 0, "999999999"),   # an article that does not exist
    ("2018-09-25", 0, "108775015"),   # customer 0 buys it again: one interaction, at this date
    ("2018-09-26", 0, "118458003"),
    ("2018-09-26", 7, "110065001"),   # a customer who does not exist
]


def write_release(root: Path, images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "articles.csv").write_text(ARTICLES_HEADER + "\n" + "\n".join(ARTICLES) + "\n", encoding="utf-8")
    lines = ["customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code"]
    for i in range(4):
        postal = hashlib.sha256(f"postal {i}".encode()).hexdigest()
        lines.append(f"{customer(i)},{'1.0' if i % 2 else ''},{'1.0' if i % 2 else ''},ACTIVE,"
                     f"{'Regularly' if i % 2 else 'NONE'},{20 + 7 * i},{postal}")
    (root / "customers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    lines += [f"{day},{customer(c)},{article},0.0{k + 1}6931,{1 + k % 2}" for k, (day, c, article) in
              enumerate(PURCHASES)]
    (root / "transactions_train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if images:
        # Tall red and wide blue photos, a PNG with transparency; 0110065001 etc. have no photo.
        photo(root, "0108775015", Image.new("RGB", (40, 80), (220, 20, 30)))
        photo(root, "0108775044", Image.new("RGB", (120, 60), (20, 40, 200)))
        photo(root, "0118458003", Image.new("RGB", (64, 64), (30, 160, 60)))
    return root


def photo(root: Path, article: str, image: Image.Image) -> None:
    folder = root / "images" / article[:3]
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / f"{article}.jpg", quality=95)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Dataset:
    root = write_release(tmp_path_factory.mktemp("hm") / "h-and-m")
    out = root.parent / "out"
    import_dataset("hm", root, out)
    return Dataset(out).validate()


def test_articles_are_padded_with_categories_attributes_and_descriptions(imported):
    items = imported.items
    assert list(items.index) == IDS
    assert items.loc["0108775015", "category"] == "Vest top"
    assert items.loc["0110065001", "category"] == "Bra"
    assert items.loc["0118458003", "pattern"] == "Stripe"
    assert items.loc["0118458003", "color"] == "Dark Blue"
    assert pd.isna(items.loc["0176209023", "color"]) and pd.isna(items.loc["0176209023", "pattern"])  # "Unknown"
    assert items.loc["0118458003", "description"] == "John WASHED"  # empty detail_desc: prod_name
    assert items.loc["0110065001", "description"].startswith("Microfibre T-shirt bra with underwired, moulded")
    cap = json.loads(items.loc["0118458003", "caption"])
    assert cap == {"Category": "Shirt", "Color": "Dark Blue", "Pattern": "Stripe", "Material": None,
                   "Silhouette": None, "Design": None, "Style": None}
    assert imported.attributes == ["color", "pattern"]
    assert imported.manifest["category_groups"]["Trousers"] == "Garment Lower body"


def test_photos_are_fitted_and_missing_ones_counted(imported):
    has = imported.items["has_image"]
    assert has.sum() == 3 and not has["0110065001"]
    assert imported.manifest["items_without_image"] == 3
    missing = imported.manifest["import"]["skipped"]["item image missing (left white)"]
    assert missing["count"] == 3 and missing["examples"][0] == "images/: item 0110065001"
    red = imported.images[imported.item_row("0108775015")]
    assert red[32, 32, 0] > 180 and red[32, 32, 1] < 70 and red[32, 32, 2] < 70
    assert (red[32, 2] == 255).all() and (red[32, 61] == 255).all()  # tall: white left and right
    blue = imported.images[imported.item_row("0108775044")]
    assert blue[32, 32, 2] > 160 and (blue[3, 32] == 255).all()  # wide: white above
    assert (imported.images[imported.item_row("0110065001")] == 255).all()


def test_transactions_become_split_interactions(imported):
    df = imported.interactions
    assert len(df) == 7  # 10 rows, 2 unknown, 1 repeat
    skipped = imported.manifest["import"]["skipped"]
    assert skipped["purchase of an article not in articles.csv"]["count"] == 1
    assert "row 6: article_id 999999999" in skipped["purchase of an article not in articles.csv"]["examples"][0]
    assert skipped["purchase by a customer not in customers.csv"]["count"] == 1
    assert skipped["repeat purchase of an article by the same customer (kept once, at the latest)"]["count"] == 1

    c0 = df[df.user_id == customer(0)].set_index("item_id")
    assert c0.loc["0108775015", "timestamp"] == 1537833600  # 2018-09-25, the repeat's date
    assert c0["split"].to_dict() == {"0111586001": "train", "0108775015": "valid", "0118458003": "test"}
    c2 = df[df.user_id == customer(2)].set_index("item_id")["split"].to_dict()
    assert c2 == {"0118458003": "train", "0176209023": "valid", "0108775044": "test"}  # same day: file order
    assert set(df[df.user_id == customer(1)]["split"]) == {"train"}  # fewer than 3: all train
    assert imported.manifest["splits"]["interactions"] == {"train": 3, "valid": 2, "test": 2}
    assert len(imported.users) == 4 and len(imported.outfits) == 0


def test_repeats_all_keeps_every_purchase(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    import_dataset("hm", root, tmp_path / "out", repeats="all")
    ds = Dataset(tmp_path / "out").validate()
    assert len(ds.interactions) == 8 and not ds.has_images
    assert ds.manifest["import"]["missing"][0]["file"] == "images"


def test_without_customers_the_buyers_are_the_users(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    (root / "customers.csv").unlink()
    import_dataset("hm", root, tmp_path / "out")
    ds = Dataset(tmp_path / "out").validate()
    assert list(ds.users.index) == [customer(0), customer(1), customer(2), customer(7)]
    assert len(ds.interactions) == 8


def _fails(root: Path, out: Path, **options) -> DatasetError:
    with pytest.raises(DatasetError) as e:
        import_dataset("hm", root, out, **options)
    return e.value


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_missing_column_names_the_column_and_leaves_no_output(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    _edit(root / "articles.csv", "colour_group_name", "colour_name")
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.field) == ("articles.csv", "colour_group_name")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temp directory left either


def test_non_utf8_text_names_file_row_and_field(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    data = (root / "articles.csv").read_bytes().replace(b"Tights with built-in", b"Tights \xe9l\xe9gant with", 1)
    (root / "articles.csv").write_bytes(data)
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("articles.csv", 3, "detail_desc")
    assert "not UTF-8" in str(e)


def test_non_utf8_customer_in_transactions(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    data = (root / "transactions_train.csv").read_bytes()
    lines = data.split(b"\n")
    lines[5] = lines[5].replace(customer(2).encode(), b"\xff\xfe" + customer(2).encode()[2:])
    (root / "transactions_train.csv").write_bytes(b"\n".join(lines))
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("transactions_train.csv", 4, "customer_id")


def test_duplicate_article_even_when_one_lacks_its_leading_zero(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    with open(root / "articles.csv", "a", encoding="utf-8") as f:
        f.write(ARTICLES[2].replace("0110065001", "110065001", 1) + "\n")
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("articles.csv", 6, "article_id")
    assert "also at row 2" in str(e)


def test_duplicate_customer(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    with open(root / "customers.csv", "a", encoding="utf-8") as f:
        f.write(f"{customer(1)},,,ACTIVE,NONE,30,x\n")
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("customers.csv", 4, "customer_id")


def test_truncated_transactions_name_the_row_and_leave_an_old_output_untouched(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the previous import")
    data = (root / "transactions_train.csv").read_text()
    (root / "transactions_train.csv").write_text(data.rstrip("\n")[:-60])  # cut inside the last customer_id
    e = _fails(root, out)
    assert (e.file, e.row, e.field) == ("transactions_train.csv", 9, "article_id")
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_truncated_articles_inside_a_quoted_field(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    data = (root / "articles.csv").read_text()
    (root / "articles.csv").write_text(data[: data.index("Joggers in sweatshirt") + 10])
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row) == ("articles.csv", 5)


def test_bad_date_and_bad_article_number(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    _edit(root / "transactions_train.csv", "2018-09-21,", "2018-21-09,")
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("transactions_train.csv", 2, "t_dat")
    root = write_release(tmp_path / "src2", images=False)
    _edit(root / "transactions_train.csv", ",111586001,", ",11158600x,")
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("transactions_train.csv", 2, "article_id")


def test_missing_file_and_unknown_option(tmp_path):
    root = write_release(tmp_path / "src", images=False)
    (root / "transactions_train.csv").unlink()
    e = _fails(root, tmp_path / "out")
    assert e.file == "transactions_train.csv" and "missing" in str(e)
    with pytest.raises(TypeError, match="known options: images"):
        import_dataset("hm", root, tmp_path / "out", colour="yes")


def test_broken_photo_is_left_white_and_counted(tmp_path):
    root = write_release(tmp_path / "src")
    (root / "images" / "011" / "0111586001.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    import_dataset("hm", root, tmp_path / "out", workers=1)
    ds = Dataset(tmp_path / "out").validate()
    broken = ds.manifest["import"]["skipped"]["item image does not decode (left white)"]
    assert broken["count"] == 1 and broken["examples"][0].startswith("images/0111586001.jpg: ")
    assert not ds.items.loc["0111586001", "has_image"] and ds.items["has_image"].sum() == 3
    assert (ds.images[ds.item_row("0111586001")] == 255).all()
    with pytest.raises(TypeError, match="unknown option 'bad_images'"):
        import_dataset("hm", root, tmp_path / "out2", bad_images="skip")


def test_cli_imports_once(tmp_path):
    root = write_release(tmp_path / "src")
    result = CliRunner().invoke(app, ["import", "hm", str(root), "--out", str(tmp_path / "out"), "--quiet",
                                      "--set", "category=product_group_name"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "skipped 1: purchase of an article not in articles.csv" in output
    ds = Dataset(tmp_path / "out")
    assert ds.items.loc["0108775015", "category"] == "Garment Upper body"
    result = CliRunner().invoke(app, ["import", "hm", str(root), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2 and "exists" in result.output
