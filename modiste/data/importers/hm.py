"""H&M Personalized Fashion Recommendations (Kaggle, 2022): articles, customers, two years of
purchases (2018-09-20 to 2020-09-22) and product photos.

The release::

    articles.csv            ~105k articles, 25 columns (article_id, product_code, prod_name, ...,
                            product_type_name, colour_group_name, ..., detail_desc)
    customers.csv           ~1.37M customers: customer_id (64 hex digits), FN, Active, club_member_status,
                            fashion_news_frequency, age, postal_code
    transactions_train.csv  ~31.8M purchases: t_dat (YYYY-MM-DD), customer_id, article_id, price,
                            sales_channel_id
    images/0XX/0XXXXXXXXX.jpg   one photo per article, in a folder named by the id's first 3 digits;
                            some articles have none

Quirks and what this importer does with them:

- article_id is a 10-digit number with a leading zero ("0108775015") that most tools (and many
  copies of the CSVs) drop: ids are read as text, checked to be digits and zero-padded to 10.
- Category = product_type_name (131 garment types: "Trousers", "Vest top", ...), the level that
  matches the other datasets' categories; product_group_name (19 coarse groups) is kept in the
  manifest's ``category_groups``. Option ``category="product_group_name"`` uses the groups instead.
- Attributes: color = colour_group_name, pattern = graphical_appearance_name (the caption's Color
  and Pattern; H&M has nothing for Material, Silhouette, Design or Style). "Unknown" and
  "Undefined" are null. Description = detail_desc, or prod_name where that is empty.
- Timestamp = the day of purchase as unix seconds. Several purchases on one day keep the file's
  order. A customer who bought an article again: one interaction at the latest purchase (option
  ``repeats="all"`` keeps every row), so that a held-out purchase is never also a training one.
- Split: leave-one-out per customer by time: the latest purchase to test, the one before to
  valid, the rest to train, for customers with at least 3 (distinct) articles; customers with
  fewer have all their purchases in train. (The competition's own test week is not public.)
- Purchases of an article not in articles.csv or by a customer not in customers.csv are skipped
  and counted, with examples. A duplicate article_id or customer_id is a `DatasetError`.
- Users are all customers of customers.csv (their FN/Active/club/news/age/postal_code are not
  modiste user fields and are left out, as the report says); without customers.csv the users are
  the buyers in the transactions. No outfits in this dataset: the outfit table is empty.
- Images: ``images/`` beside the CSVs (or option ``images=DIR``), decoded by ``workers`` threads
  (default up to 4); articles without a photo, or whose photo does not decode, get ``has_image``
  false and a white picture, counted in the report with examples.

Real size: transactions are read in chunks with the three id columns as categoricals, so each
distinct id of a chunk is looked up once and a purchase costs 12 bytes of numpy until written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modiste.data.errors import DatasetError
from modiste.data.importers.builder import (DatasetBuilder, caption, check_options, concat, latest_of_pairs,
                                            leave_one_out, load_images_by_id, positive_int_option, workers_option)
from modiste.data.importers.csv_tables import (check_filled, check_unique, check_utf8, find_table, parse_error,
                                               read_chunks)

ARTICLES, CUSTOMERS, TRANSACTIONS, IMAGES = "articles.csv", "customers.csv", "transactions_train.csv", "images"
ARTICLE_COLUMNS = (
    "article_id", "product_code", "prod_name", "product_type_no", "product_type_name", "product_group_name",
    "graphical_appearance_no", "graphical_appearance_name", "colour_group_code", "colour_group_name",
    "perceived_colour_value_id", "perceived_colour_value_name", "perceived_colour_master_id",
    "perceived_colour_master_name", "department_no", "department_name", "index_code", "index_name",
    "index_group_no", "index_group_name", "section_no", "section_name", "garment_group_no", "garment_group_name",
    "detail_desc",
)
CUSTOMER_COLUMNS = ("customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency", "age",
                    "postal_code")
TRANSACTION_COLUMNS = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
# What this importer reads of each file; the other columns may be absent.
ARTICLE_NEEDS = ("article_id", "prod_name", "product_type_name", "product_group_name", "graphical_appearance_name",
                 "colour_group_name", "detail_desc")
TRANSACTION_NEEDS = ("t_dat", "customer_id", "article_id")
ATTRIBUTES = {"color": "colour_group_name", "pattern": "graphical_appearance_name"}
NO_VALUE = {"", "unknown", "undefined"}

OPTIONS: dict[str, Any] = {
    "images": None,              # photo folder; default: images/ beside the CSVs, where it exists
    "articles_file": None,       # file names other than the release's (relative to the source folder)
    "customers_file": None,
    "transactions_file": None,
    "chunksize": 1_000_000,      # transactions per chunk
    "category": "product_type_name",  # or "product_group_name"
    "repeats": "latest",         # "latest": an article once per customer, at its latest purchase; "all": every row
    "workers": None,             # threads decoding photos (default: up to 4, no more than the CPUs)
}

_DAY = 86_400
_EMPTY = "is empty (a truncated line?)"


def dataset_info(src: Path, **options: Any) -> dict[str, Any]:
    _options(options)
    return {
        "name": "hm",
        "license": "H&M Personalized Fashion Recommendations competition data: non-commercial use under the "
                   "Kaggle competition rules",
        "attributes": list(ATTRIBUTES),
        "provenance": "H&M Personalized Fashion Recommendations (Kaggle, 2022): articles, customers, purchases "
                      "2018-09-20 to 2020-09-22, product photos",
    }


def run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    opts = _options(options)
    src = Path(src)
    folder = src.parent if src.is_file() else src
    articles_path = find_table(folder, opts["articles_file"], (ARTICLES,), "articles_file", required=True)
    transactions_path = find_table(folder, opts["transactions_file"], (TRANSACTIONS,), "transactions_file",
                                   required=True)
    customers_path = find_table(folder, opts["customers_file"], (CUSTOMERS,), "customers_file", required=False)

    items = _read_articles(articles_path, build, opts["category"])
    article_ids = items["item_id"].to_numpy(dtype=object)

    if customers_path is None:
        build.report.lack(CUSTOMERS, "nothing but the customer list: users are the buyers in the transactions")
        customer_ids = None
    else:
        customer_ids = _read_customers(customers_path, build)
    customer_ids, interactions = _read_transactions(transactions_path, build, opts, article_ids, customer_ids)
    build.users(pd.DataFrame({"user_id": pd.Series(customer_ids, dtype=object)}))
    build.interactions(interactions)

    image_folder = Path(opts["images"]) if opts["images"] is not None else folder / IMAGES
    if opts["images"] is not None or image_folder.is_dir():
        items["has_image"] = load_images_by_id(build, image_folder, article_ids, opts["workers"])
    else:
        build.report.lack(IMAGES, "photos: visual models and image generation")
    build.items(items)


# ---------------------------------------------------------------------------- options and files

def _options(options: dict[str, Any]) -> dict[str, Any]:
    check_options("hm", options, OPTIONS)
    opts = {**OPTIONS, **options}
    for key, allowed in (("category", ("product_type_name", "product_group_name")), ("repeats", ("latest", "all"))):
        if opts[key] not in allowed:
            raise ValueError(f"hm: {key} must be one of {', '.join(allowed)}, not {opts[key]!r}")
    opts["chunksize"] = positive_int_option(opts, "chunksize", "hm", OPTIONS["chunksize"])
    opts["workers"] = workers_option(options, "hm")
    return opts


def _header(path: Path, needs: tuple[str, ...]) -> list[str]:
    """The file's columns; a DatasetError naming the first needed one that is missing."""
    try:
        columns = list(pd.read_csv(path, nrows=0, encoding="utf-8", encoding_errors="surrogateescape").columns)
    except pd.errors.EmptyDataError:
        raise DatasetError(path.name, "is empty (no header line)") from None
    for column in needs:
        if column not in columns:
            raise DatasetError(path.name, f"required column is missing (the header has {', '.join(columns)})",
                               field=column)
    return columns


def _read_csv(path: Path, **read: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=object, na_filter=False, encoding="utf-8", encoding_errors="surrogateescape",
                           **read)
    except pd.errors.ParserError as e:
        raise parse_error(path.name, e, header_lines=1) from None


def _pad_ids(values: pd.Series, file: str, field: str, width: int = 10) -> pd.Series:
    """Digits, zero-padded: '108775015' and '0108775015' are the same article."""
    values = values.str.strip()
    ok = values.str.fullmatch(rf"\d{{1,{width}}}").fillna(False).to_numpy(dtype=bool)
    if not ok.all():
        r = int(np.argmin(ok))
        raise DatasetError(file, f"{values.iloc[r]!r} is not an article number (up to {width} digits)",
                           row=int(values.index[r]), field=field)
    return values.str.zfill(width)


# ---------------------------------------------------------------------------- articles and customers

def _read_articles(path: Path, build: DatasetBuilder, category_field: str) -> pd.DataFrame:
    file = path.name
    build.bar.step("reading articles")
    columns = _header(path, ARTICLE_NEEDS)
    df = _read_csv(path)
    for column in columns:
        check_utf8(df[column], file, column)
    check_filled(df["article_id"], file, "article_id", _EMPTY)
    ids = _pad_ids(df["article_id"], file, "article_id")
    check_unique(ids.to_numpy(dtype=object), ids.index.to_numpy(), file, "article_id")
    check_filled(df[category_field], file, category_field, _EMPTY)
    category = df[category_field].str.strip()
    attributes = {name: _value_or_none(df[column]) for name, column in ATTRIBUTES.items()}
    desc, name = df["detail_desc"].str.strip(), df["prod_name"].str.strip()
    description = desc.where(desc != "", name).where(lambda d: d != "", category)

    # One caption per distinct (category, color, pattern), not one json.dumps per article.
    keys = pd.DataFrame({"category": category, **attributes}).fillna("\x00")
    combos = keys.drop_duplicates()
    combos["caption"] = [caption(c, **{a: (None if v == "\x00" else v) for a, v in zip(ATTRIBUTES, values)})
                         for c, *values in combos.itertuples(index=False)]
    captions = keys.merge(combos, how="left", on=list(keys.columns))["caption"]

    if category_field == "product_type_name":
        groups = (pd.DataFrame({"type": category, "group": df["product_group_name"].str.strip()})
                  .groupby("type")["group"].agg(lambda g: g.value_counts().index[0]))
        build.manifest(category_groups={str(k): str(v) for k, v in groups.items()})
    build.manifest(category_field=category_field)
    return pd.DataFrame({
        "item_id": pd.Series(ids.to_numpy(dtype=object), dtype=object),
        "category": pd.Series(category.to_numpy(dtype=object), dtype=object),
        "caption": pd.Series(captions.to_numpy(dtype=object), dtype=object),
        "description": pd.Series(description.to_numpy(dtype=object), dtype=object),
        **{a: pd.Series(v.to_numpy(dtype=object), dtype=object) for a, v in attributes.items()},
    })


def _value_or_none(values: pd.Series) -> pd.Series:
    values = values.str.strip()
    return values.where(~values.str.lower().isin(NO_VALUE), None).astype(object)


def _read_customers(path: Path, build: DatasetBuilder) -> np.ndarray:
    file = path.name
    build.bar.step("reading customers")
    columns = _header(path, ("customer_id",))
    ids = _read_csv(path, usecols=["customer_id"])["customer_id"]
    check_utf8(ids, file, "customer_id")
    check_filled(ids, file, "customer_id", _EMPTY)
    ids = ids.str.strip()
    check_unique(ids.to_numpy(dtype=object), ids.index.to_numpy(), file, "customer_id")
    left_out = [c for c in columns if c != "customer_id"]
    if left_out:
        build.report.note(f"{file}: {', '.join(left_out)} are not modiste user fields and are not imported")
    return ids.to_numpy(dtype=object)


# ---------------------------------------------------------------------------- transactions

def _read_transactions(path: Path, build: DatasetBuilder, opts: dict[str, Any], article_ids: np.ndarray,
                       customer_ids: np.ndarray | None) -> tuple[np.ndarray, pd.DataFrame]:
    """(the users, the interactions table): purchases mapped to codes chunk by chunk, then sorted and split."""
    file = path.name
    _header(path, TRANSACTION_NEEDS)
    articles = pd.Index(article_ids)
    customers = pd.Index(customer_ids) if customer_ids is not None else None
    users, items, days = [], [], []
    buyers: list[np.ndarray] = []  # without customers.csv: each chunk's distinct buyers, resolved at the end
    unknown_article = unknown_customer = 0
    article_examples: list[str] = []
    customer_examples: list[str] = []
    chunksize = opts["chunksize"]
    # latin-1 never fails to decode, so ids stay categoricals (one lookup per distinct value);
    # the ids and dates are ASCII, and anything else is checked for UTF-8 below.
    for chunk in read_chunks(path, build, "transactions", chunksize, header_lines=1, usecols=list(TRANSACTION_NEEDS),
                             dtype="category", encoding="latin-1"):
        rows = chunk.index.to_numpy(dtype=np.int64)
        day = _days(chunk["t_dat"], rows, file)
        item = _codes(chunk["article_id"], rows, file, "article_id",
                      lambda v: articles.get_indexer(_pad_ids(v, file, "article_id").to_numpy(dtype=object)))
        user = _codes(chunk["customer_id"], rows, file, "customer_id",
                      (lambda v: customers.get_indexer(v.to_numpy(dtype=object))) if customers is not None
                      else (lambda v: _number_buyers(v, buyers)))
        bad_item, bad_user = item < 0, (user < 0) & (item >= 0)
        if bad_item.any():
            unknown_article += int(bad_item.sum())
            article_examples += [f"row {rows[r]}: article_id {chunk['article_id'].iat[r]}"
                                 for r in np.flatnonzero(bad_item)[: 5 - len(article_examples)]]
        if bad_user.any():
            unknown_customer += int(bad_user.sum())
            customer_examples += [f"row {rows[r]}: customer_id {chunk['customer_id'].iat[r]}"
                                  for r in np.flatnonzero(bad_user)[: 5 - len(customer_examples)]]
        keep = ~bad_item & ~bad_user
        users.append(user[keep].astype(np.int32))
        items.append(item[keep].astype(np.int32))
        days.append(day[keep].astype(np.int32))  # days since 1970
    build.report.skip_many(f"purchase of an article not in {ARTICLES}", unknown_article, file=file,
                           examples=article_examples)
    build.report.skip_many(f"purchase by a customer not in {CUSTOMERS}", unknown_customer, file=file,
                           examples=customer_examples)
    user, item, day = concat(users, np.int32), concat(items, np.int32), concat(days, np.int32)
    if customers is None:
        # Chunk-local buyer numbers -> one number per distinct buyer, in order of first purchase.
        global_code, customer_ids = pd.factorize(concat(buyers, object))
        user = global_code[user].astype(np.int32)
        customer_ids = np.asarray(customer_ids, dtype=object)

    build.bar.step("splitting purchases")
    # Group by customer, by day within a customer, file order within a day (a stable sort).
    first_day = int(day.min()) if len(day) else 0
    span = (int(day.max()) - first_day + 1) if len(day) else 1
    order = np.argsort(user.astype(np.int64) * span + (day - first_day), kind="stable")
    user, item, day = user[order], item[order], day[order]
    if opts["repeats"] == "latest":
        keep = latest_of_pairs(user, item, len(article_ids))
        build.report.skip_many("repeat purchase of an article by the same customer (kept once, at the latest)",
                               int((~keep).sum()), file=file)
        user, item, day = user[keep], item[keep], day[keep]
    interactions = pd.DataFrame({
        "user_id": pd.Series(customer_ids[user], dtype=object),
        "item_id": pd.Series(article_ids[item], dtype=object),
        "timestamp": day.astype(np.int64) * _DAY,
        "split": pd.Series(leave_one_out(user), dtype=object),
    })
    return customer_ids, interactions


def _number_buyers(distinct: pd.Series, buyers: list[np.ndarray]) -> np.ndarray:
    """Provisional codes for a chunk's distinct buyers (running numbers over all chunks so far)."""
    offset = sum(len(b) for b in buyers)
    buyers.append(distinct.to_numpy(dtype=object))
    return np.arange(len(distinct)) + offset


def _categories(values: pd.Series, rows: np.ndarray, file: str, field: str) -> pd.Index:
    """A categorical chunk column's distinct values, as UTF-8 text (they were read as latin-1)."""
    codes = values.cat.codes.to_numpy()
    if (codes < 0).any():
        raise DatasetError(file, _EMPTY, row=int(rows[np.argmax(codes < 0)]), field=field)
    # pandas infers numbers where every value of a chunk is one (article ids): back to their text.
    categories = pd.Index(values.cat.categories.astype(str).to_numpy(dtype=object), dtype=object)
    foreign = np.flatnonzero(np.asarray(categories.str.contains(r"[^\x00-\x7f]", regex=True), dtype=bool))
    if len(foreign):
        fixed = categories.to_numpy(dtype=object).copy()
        for k in foreign:  # rare: anything not ASCII must still be UTF-8
            raw = fixed[k].encode("latin-1")
            try:
                fixed[k] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DatasetError(file, f"is not UTF-8 text: {raw[:60]!r}", row=int(rows[np.argmax(codes == k)]),
                                   field=field) from None
        categories = pd.Index(fixed, dtype=object)
    return categories


def _codes(values: pd.Series, rows: np.ndarray, file: str, field: str, lookup) -> np.ndarray:
    """Map a categorical chunk column to codes, looking up each distinct value once."""
    categories = _categories(values, rows, file, field)
    found = np.asarray(lookup(pd.Series(categories.to_numpy(dtype=object), dtype=object,
                                        index=_first_rows(values, rows))), dtype=np.int64)
    return found[values.cat.codes.to_numpy()]


def _first_rows(values: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The file row of each category's first use (so that an error about a value names its row)."""
    codes = values.cat.codes.to_numpy()
    first = np.full(len(values.cat.categories), -1, np.int64)
    seen = np.unique(codes, return_index=True)
    first[seen[0]] = rows[seen[1]]
    return first


def _days(values: pd.Series, rows: np.ndarray, file: str) -> np.ndarray:
    categories = _categories(values, rows, file, "t_dat")
    dates = pd.to_datetime(pd.Series(categories.to_numpy(dtype=object)), format="%Y-%m-%d", errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        k = int(np.argmax(bad))
        row = int(rows[np.argmax(values.cat.codes.to_numpy() == k)])
        raise DatasetError(file, f"{categories[k]!r} is not a date (YYYY-MM-DD)", row=row, field="t_dat")
    day = dates.to_numpy().astype("datetime64[D]").astype(np.int64)
    return day[values.cat.codes.to_numpy()]
