"""`modiste ...`: the command line. Thin: parse, call the package, print."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from modiste.data import Dataset, DatasetError
from modiste.data.summary import summarize

app = typer.Typer(help="modiste: personalized, generative fashion recommendation.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
console = Console()
err = Console(stderr=True)


def _open(path: Path) -> Dataset:
    try:
        return Dataset(path).validate()
    except DatasetError as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None


@app.command()
def world(
    out: Annotated[Path, typer.Option("--out", help="directory to write the dataset to")],
    preset: Annotated[str, typer.Option(help="tiny | small | default")] = "default",
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same bytes")] = 0,
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Generate a synthetic fashion world with a known ground truth (the oracle)."""
    from modiste.data.world.generate import PRESETS, generate_world

    if preset not in PRESETS:
        err.print(f"[bold red]error:[/] unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        raise typer.Exit(2)
    if out.exists() and not force:
        err.print(f"[bold red]error:[/] {out} exists; pass --force to replace it")
        raise typer.Exit(2)
    start = time.perf_counter()
    generate_world(out, preset=preset, seed=seed, progress=not quiet)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    console.print(f"wrote {out} ({size / 2**20:.1f} MiB) in {time.perf_counter() - start:.1f} s")


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="dataset directory")]) -> None:
    """Check every file of a dataset; print the first problem, naming the file, row and field."""
    ds = _open(path)
    console.print(f"[green]ok[/] {ds.name}: {len(ds.items)} items, {len(ds.users)} users, "
                  f"{len(ds.interactions)} interactions, {len(ds.outfits)} outfits")


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="dataset directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Counts, splits, categories, the cold-item share and the oracle's figures."""
    summary = summarize(_open(path))
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(f"[bold]{summary['name']}[/]  ({summary['source']}; {summary['license']})")
    counts = Table("what", "count", title="counts")
    for key, value in summary["counts"].items():
        counts.add_row(key, f"{value:,}")
    splits = Table("table", *summary["split_names"], title="splits")
    for name, by_split in summary["splits"].items():
        splits.add_row(name, *(f"{by_split.get(s, 0):,}" for s in summary["split_names"]))
    categories = Table("category", "items", "share", title="categories")
    for cat, n in summary["categories"].items():
        categories.add_row(cat, f"{n:,}", f"{n / summary['counts']['items']:.1%}")
    console.print(counts, splits, categories)
    console.print(f"cold items (fewer than 5 training interactions): {summary['cold_items_share']:.1%} of the "
                  f"catalogue, {summary['cold_test_share']:.1%} of test interactions")
    if summary.get("oracle"):
        oracle = Table("oracle (the ceiling on the test split)", "value")
        for group, figures in summary["oracle"].items():
            if isinstance(figures, dict):
                for key, value in figures.items():
                    oracle.add_row(f"{group} {key}", f"{value:.4f}" if isinstance(value, float) else str(value))
            else:
                oracle.add_row(group, f"{figures:.4f}")
        console.print(oracle)


@app.command()
def show(
    target: Annotated[str, typer.Argument(help="a dataset directory; 'recs' (a user's recommendations); "
                                               "'outfit' (a FITB question or a composed outfit)")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write")],
    persons: Annotated[bool, typer.Option("--persons", help="draw avatars and their parse masks instead of items")] = False,
    n: Annotated[int, typer.Option("-n", help="how many to draw")] = 40,
    seed: Annotated[int, typer.Option(help="which random sample to draw")] = 0,
    columns: Annotated[int, typer.Option(help="tiles per row")] = 8,
    run: Annotated[Path | None, typer.Option(help="with 'recs': the training run")] = None,
    user: Annotated[str | None, typer.Option(help="with 'recs': the user id")] = None,
    k: Annotated[int, typer.Option("-k", help="with 'recs': how many recommendations")] = 10,
    question: Annotated[str | None, typer.Option(help="with 'outfit': a FITB question id")] = None,
    categories: Annotated[str | None, typer.Option(help="with 'outfit': categories of an outfit to compose")] = None,
) -> None:
    """Draw a contact sheet of items with their captions (or, with --persons, of avatars with masks;
    or, as `show recs --run RUN --user U`, a user's history beside their top-k; or, as `show outfit --run RUN
    --question Q` or `--categories ...`, a FITB question with its ranked candidates or a composed outfit)."""
    from modiste.viz import colorize_mask, contact_sheet, save_png

    if target == "recs" and not Path(target).is_dir():
        if run is None or user is None:
            _fail("show recs needs --run and --user")
        _show_recs(run, user, k, out)
        return
    if target == "outfit" and not Path(target).is_dir():
        if run is None:
            _fail("show outfit needs --run")
        _show_outfit(run, out, question, user, categories)
        return
    path = Path(target)
    ds = _open(path)
    rng = np.random.default_rng(seed)
    if persons:
        if ds.persons is None:
            err.print(f"[bold red]error:[/] {path} has no persons")
            raise typer.Exit(2)
        rows = np.sort(rng.choice(len(ds.persons), size=min(n, len(ds.persons)), replace=False))
        tiles = [np.concatenate([ds.person_images[r], colorize_mask(ds.person_masks[r])], axis=1) for r in rows]
        people = ds.persons.iloc[rows]
        labels = [f"{p.body_figure}, {p.height}, {p.skin_color} skin, {p.hair_color} {p.hair_style} hair, "
                  f"{p.color_contrast} contrast" for p in people.itertuples()]
        sheet = contact_sheet(tiles, labels, columns=min(columns, 6), label_lines=4,
                              title=f"{ds.name}: persons (avatar | parse mask)")
    else:
        if not ds.has_images:
            err.print(f"[bold red]error:[/] {path} has no images")
            raise typer.Exit(2)
        # An even spread over categories, so that every category shows.
        items = ds.items
        rows = np.sort(rng.choice(len(items), size=min(n, len(items)), replace=False))
        rows = rows[np.argsort(items["category"].to_numpy()[rows], kind="stable")]
        labels = []
        for r in rows:
            caption = json.loads(items["caption"].iat[r])
            labels.append(" · ".join(v for v in caption.values() if v))
        sheet = contact_sheet([ds.images[r] for r in rows], labels, columns=columns, label_lines=4,
                              title=f"{ds.name}: {len(rows)} of {len(items):,} items")
    save_png(sheet, out)
    console.print(f"wrote {out}")


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


# ---------------------------------------------------------------------------- import / export

@app.command("import")
def import_(
    format: Annotated[str, typer.Argument(help="difashion | pog | dvbpr | hm | polyvore-outfits | o4u")],
    src: Annotated[Path, typer.Argument(help="the source file or folder, as the dataset ships it")],
    out: Annotated[Path, typer.Option("--out", help="directory to write the modiste dataset to")],
    images: Annotated[Path | None, typer.Option(help="a local image folder, where the format has one")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a format option, e.g. --set version=disjoint")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Import a public fashion dataset into the modiste format; a failed import writes nothing."""
    from modiste.data.importers import FORMATS, import_dataset

    if format not in FORMATS:
        _fail(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    if out.exists() and not force:
        _fail(f"{out} exists; pass --force to replace it")
    options = _settings(set_ or [])
    if images is not None:
        options["images"] = images
    try:
        report = import_dataset(format, src, out, progress=not quiet, **options)
    except (DatasetError, ValueError, TypeError) as e:
        _fail(str(e))
    for line in report.lines():
        console.print(line, markup=False, highlight=False)
    console.print(f"wrote {out}")


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="dataset directory")],
    format: Annotated[str, typer.Option("--format", help="difashion")],
    out: Annotated[Path, typer.Option("--out", help="directory to write")],
    force: Annotated[bool, typer.Option(help="replace an existing directory at --out")] = False,
) -> None:
    """Write a dataset in another layout (DiFashion's), so that the papers' scripts can read its splits."""
    from modiste.data.importers import EXPORTERS, export_dataset

    if format not in EXPORTERS:
        _fail(f"unknown export format {format!r}: choose one of {', '.join(EXPORTERS)}")
    if out.exists() and not force:
        _fail(f"{out} exists; pass --force to replace it")
    ds = _open(path)
    try:
        export_dataset(format, ds, out)
    except (DatasetError, ValueError) as e:
        _fail(str(e))
    console.print(f"wrote {out}")


# ---------------------------------------------------------------------------- ranking

train_app = typer.Typer(help="Train a model.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a trained model.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


def _settings(pairs: list[str]) -> dict:
    """--set key=value pairs, values parsed as JSON where they parse (numbers, true, null)."""
    settings = {}
    for pair in pairs:
        if "=" not in pair:
            _fail(f"--set wants key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _overrides(model_set: list[str] | None, train_set: list[str] | None, epochs: int | None,
               minutes: float | None = None) -> tuple[dict | None, dict | None]:
    """(model settings, training settings) from --set, --train-set, --epochs and --minutes; None where empty."""
    train = _settings(train_set or [])
    if epochs is not None:
        train["epochs"] = epochs
    if minutes is not None:
        train["max_minutes"] = minutes
    return _settings(model_set or []) or None, train or None


@train_app.command("rec")
def train_rec(
    model: Annotated[str, typer.Option(help="pop | bpr | vbpr | dvbpr")],
    data: Annotated[Path, typer.Option(help="dataset directory")],
    out: Annotated[Path, typer.Option(help="run directory (resumed if it holds an unfinished run)")],
    epochs: Annotated[int | None, typer.Option(help="at most this many epochs")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a model setting, e.g. --set factors=32")] = None,
    train_set: Annotated[list[str] | None, typer.Option("--train-set", help="a training setting, e.g. --train-set lr=0.01")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the run's last checkpoint")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Train a recommender with early stopping on validation AUC; checkpoints survive a kill."""
    from modiste.rec.train import train_recommender

    _open(data)
    model_overrides, train_overrides = _overrides(set_, train_set, epochs)
    try:
        train_recommender(model, data, out, model_overrides=model_overrides, train_overrides=train_overrides,
                          resume=resume, progress=not quiet)
    except ValueError as e:
        _fail(str(e))
    metrics = json.loads((out / "metrics.json").read_text())
    console.print(f"trained {model}: best validation AUC {metrics['best_valid_auc']:.4f} "
                  f"after {len(metrics['history'])} epoch(s); model in {out / 'best'}")


@eval_app.command("rec")
def eval_rec(
    run: Annotated[Path, typer.Option(help="run directory")],
    data: Annotated[Path | None, typer.Option(help="dataset directory (default: the run's own)")] = None,
    split: Annotated[str, typer.Option(help="test | valid")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """AUC over all unseen items, cold AUC, Recall@10/50, NDCG@10, beside the oracle's."""
    from modiste.rec.evaluate import evaluate_run

    try:
        report = evaluate_run(run, data, split)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table("metric", report["model"], "oracle", title=f"{report['dataset']} ({split} split)")
    for key, value in report["metrics"].items():
        oracle = report.get("oracle", {}).get(key)
        table.add_row(key, _fmt(value), _fmt(oracle) if oracle is not None else "")
    console.print(table)


@app.command()
def recommend(
    run: Annotated[Path, typer.Option(help="run directory")],
    user: Annotated[str | None, typer.Option(help="user id")] = None,
    items: Annotated[str | None, typer.Option(
        help="instead of --user: comma-separated item ids a new shopper has (dvbpr with users=history, or pop)")] = None,
    k: Annotated[int, typer.Option("-k", help="how many")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A user's top-k items, leaving out what they already have; or, with --items, a new shopper's."""
    from modiste.rec.evaluate import recommend_for, recommend_for_items

    if (user is None) == (items is None):
        _fail("give either --user or --items")
    try:
        if user is not None:
            recs = recommend_for(run, user, k)
        else:
            recs = recommend_for_items(run, [i.strip() for i in items.split(",") if i.strip()], k)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    if as_json:
        print(json.dumps(recs, indent=2))
        return
    table = Table("#", "item", "score", "description", title=f"top {k} for {user or 'a new shopper'}")
    for rank, rec in enumerate(recs, 1):
        table.add_row(str(rank), rec["item_id"], f"{rec['score']:.3f}", rec["description"])
    console.print(table)


def _show_recs(run: Path, user: str, k: int, out: Path) -> None:
    from modiste.rec.evaluate import recommend_for, run_dataset
    from modiste.viz import contact_sheet, save_png, stack

    try:
        recs = recommend_for(run, user, k)
        ds = run_dataset(run)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    if not ds.has_images:
        _fail(f"dataset '{ds.name}' has no images to draw")
    history = ds.history(user)[-10:]
    label = lambda item_id: " · ".join(v for v in json.loads(ds.items.at[item_id, "caption"]).values() if v)  # noqa: E731
    sheets = [contact_sheet([ds.images[ds.item_row(i)] for i in history], [label(i) for i in history],
                            columns=10, label_lines=4, title=f"{user}: latest {len(history)} training items"),
              contact_sheet([ds.images[ds.item_row(r["item_id"])] for r in recs],
                            [f"{r['score']:.2f} " + label(r["item_id"]) for r in recs], columns=10, label_lines=4,
                            title=f"top {len(recs)} recommendations")]
    save_png(stack(sheets), out)
    console.print(f"wrote {out}")


# ---------------------------------------------------------------------------- outfits

bench_app = typer.Typer(help="Benchmark modiste against baselines and peers.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@train_app.command("outfit")
def train_outfit_(
    data: Annotated[Path, typer.Option(help="dataset directory")],
    out: Annotated[Path, typer.Option(help="run directory (resumed if it holds an unfinished run)")],
    epochs: Annotated[int | None, typer.Option(help="at most this many epochs")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a model setting, e.g. --set dim=32")] = None,
    train_set: Annotated[list[str] | None, typer.Option("--train-set", help="a training setting, e.g. --train-set lr=0.001")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the run's last checkpoint")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Train the outfit model (compatibility + taste), early stopping on validation FITB accuracy."""
    from modiste.outfit.train import train_outfit

    _open(data)
    model_overrides, train_overrides = _overrides(set_, train_set, epochs)
    try:
        train_outfit(data, out, model_overrides=model_overrides, train_overrides=train_overrides,
                     resume=resume, progress=not quiet)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    metrics = json.loads((out / "metrics.json").read_text())
    console.print(f"trained the outfit model: best validation accuracy {metrics['best_valid_accuracy']:.4f} "
                  f"after {len(metrics['history'])} epoch(s); model in {out / 'best'}")


def _outfit_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))


def _item_table(rows: list[dict], title: str) -> Table:
    table = Table("#", "item", "category", "taste" if rows and "taste" in rows[0] else "score", "description",
                  title=title)
    for rank, item in enumerate(rows, 1):
        table.add_row(str(rank), item["item_id"], item["category"],
                      f"{item.get('score', item.get('taste', 0.0)):.3f}", item["description"])
    return table


@app.command()
def complete(
    run: Annotated[Path, typer.Option(help="outfit run directory")],
    items: Annotated[str, typer.Option(help="the outfit so far: item ids separated by commas")],
    category: Annotated[str, typer.Option(help="the category of the missing item")],
    user: Annotated[str | None, typer.Option(help="user id: personalize with their history")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="how many")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The best items of a category to complete an outfit (for a user, if given)."""
    from modiste.outfit.api import complete as complete_outfit

    ids = [i.strip() for i in items.split(",") if i.strip()]
    if not ids:
        _fail("--items needs at least one item id")
    recs = _outfit_call(complete_outfit, run, ids, category, user, k)
    if as_json:
        print(json.dumps(recs, indent=2))
        return
    console.print(_item_table(recs, f"best {category} to go with {', '.join(ids)}" + (f" for {user}" if user else "")))


@app.command()
def outfit(
    run: Annotated[Path, typer.Option(help="outfit run directory")],
    categories: Annotated[str, typer.Option(help="categories separated by commas, e.g. top,trousers,shoes,bag")],
    user: Annotated[str | None, typer.Option(help="user id: an outfit to their taste")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Compose a whole outfit from the catalogue (for a user, if given)."""
    from modiste.outfit.api import compose

    names = [c.strip() for c in categories.split(",") if c.strip()]
    if not names:
        _fail("--categories needs at least one category")
    result = _outfit_call(compose, run, names, user)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(_item_table(result["items"], f"an outfit{' for ' + user if user else ''} "
                                               f"(compatibility {result['compatibility']:.3f})"))


def _show_outfit(run: Path, out: Path, question_id: str | None, user: str | None, categories: str | None) -> None:
    from modiste.outfit.api import compose, load_run, question
    from modiste.viz import contact_sheet, save_png, stack

    r = _outfit_call(load_run, run)
    if not r.ds.has_images:
        _fail(f"dataset '{r.ds.name}' has no images to draw")
    picture = lambda item: r.ds.images[r.ds.item_row(item["item_id"])]  # noqa: E731
    label = lambda item: f"{item.get('score', item.get('taste', 0.0)):.2f} {item['description']}"  # noqa: E731
    sheets = []
    if question_id:
        q = _outfit_call(question, run, question_id)
        user = q["user_id"]
        answer = q["answer"]["item_id"]
        ranked = sorted(q["candidates"], key=lambda c: -c["score"])
        sheets.append(contact_sheet([picture(i) for i in q["context"]], [i["description"] for i in q["context"]],
                                    columns=5, label_lines=4, title=f"{question_id}: the outfit, missing a {q['category']}"))
        sheets.append(contact_sheet([picture(i) for i in ranked],
                                    [("TRUE " if i["item_id"] == answer else "") + label(i) for i in ranked], columns=5,
                                    label_lines=4, title="candidates, best first (TRUE marks the real item)"))
        category = q["category"]
    elif categories:
        names = [c.strip() for c in categories.split(",") if c.strip()]
        result = _outfit_call(compose, run, names, user)
        sheets.append(contact_sheet([picture(i) for i in result["items"]], [label(i) for i in result["items"]],
                                    columns=max(4, len(names)), label_lines=4,
                                    title=f"composed for {user or 'anyone'}: compatibility {result['compatibility']:.2f}"))
        category = None
    else:
        _fail("show outfit needs --question, or --categories (with --user for a personal outfit)")
    if user:
        history = r.ds.history(user, category)[-10:]
        if history:
            sheets.append(contact_sheet([r.ds.images[r.ds.item_row(i)] for i in history],
                                        [r.ds.items.at[i, "description"] for i in history], columns=10, label_lines=4,
                                        title=f"{user}: latest {len(history)} training items" + (f" ({category})" if category else "")))
    save_png(stack(sheets), out)
    console.print(f"wrote {out}")


@bench_app.command("outfit")
def bench_outfit(
    data: Annotated[Path, typer.Option(help="dataset directory")],
    out: Annotated[Path, typer.Option(help="report directory (report.json, report.md, runs/)")],
    run: Annotated[Path | None, typer.Option(help="reuse or write the model's run here (default: OUT/runs/outfit)")] = None,
    epochs: Annotated[int | None, typer.Option(help="at most this many training epochs")] = None,
    users: Annotated[int, typer.Option(help="users to compose whole outfits for")] = 300,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """FITB, PFITB (the dataset's own and hard candidate sets), compatibility AUC and whole outfits:
    the outfit model and its blend against random, popularity, category match, history similarity,
    user- and item-based CF and the oracle."""
    from modiste.outfit.report import outfit_report

    _open(data)
    try:
        report = outfit_report(data, out, run, train_overrides={"epochs": epochs} if epochs is not None else None,
                               outfit_users=users, progress=not quiet)
    except ValueError as e:
        _fail(str(e))
    console.print((out / "report.md").read_text())
    console.print(f"wrote {out / 'report.json'} ({len(report['rows'])} rows)")


# ---------------------------------------------------------------------------- design

@train_app.command("gan")
def train_gan_(
    data: Annotated[Path, typer.Option(help="dataset directory (with images)")],
    out: Annotated[Path, typer.Option(help="run directory (resumed if it holds an unfinished run)")],
    epochs: Annotated[int | None, typer.Option(help="at most this many epochs")] = None,
    minutes: Annotated[float | None, typer.Option(help="stop after this many minutes of training (default 30)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a network setting, e.g. --set g_width=32")] = None,
    train_set: Annotated[list[str] | None, typer.Option("--train-set", help="a training setting, e.g. --train-set batch_size=32")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the run's last checkpoint")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Train the category-conditional GAN (LSGAN) on a dataset's pictures; a sample sheet per epoch in the run."""
    from modiste.design.train import METRICS, train_gan

    _open(data)
    model_overrides, train_overrides = _overrides(set_, train_set, epochs, minutes)
    try:
        gan = train_gan(data, out, model_overrides=model_overrides, train_overrides=train_overrides, resume=resume,
                        progress=not quiet)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    metrics = json.loads((out / METRICS).read_text())
    seconds = metrics["train_seconds"]
    console.print(f"trained the GAN on {len(gan.categories)} categories: {metrics['images_seen']:,} pictures in "
                  f"{seconds / 60:.1f} min ({metrics['images_seen'] / max(seconds, 1e-9):.0f} pictures/s); "
                  f"model in {out / 'model'}, samples in {out}/samples-epoch-*.png")


@app.command()
def design(
    rec_run: Annotated[Path, typer.Option("--rec-run", help="a DVBPR training run (its preference model)")],
    gan_run: Annotated[Path, typer.Option("--gan-run", help="a GAN training run")],
    user: Annotated[str, typer.Option(help="user id")],
    category: Annotated[str, typer.Option(help="the category to design")],
    out: Annotated[Path | None, typer.Option("--out", help="PNG to draw the designs (or the tailoring steps) to")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="how many designs")] = 8,
    item: Annotated[str | None, typer.Option(help="tailor this catalogue item to the user instead")] = None,
    steps: Annotated[int, typer.Option(help="Adam steps on z")] = 100,
    eta: Annotated[float, typer.Option(help="weight of the realism term (D - 1)^2")] = 1.0,
    restarts: Annotated[int, typer.Option(min=1, help="random starts per design")] = 3,
    seed: Annotated[int, typer.Option(help="seeds the starts")] = 0,
    fit_steps: Annotated[int, typer.Option(help="with --item: Adam steps that fit z to the item's picture")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Design new items of a category for a user by preference maximisation in the GAN's latent space
    (or, with --item, tailor a catalogue item to them step by step)."""
    from modiste.design.api import design as make_design
    from modiste.design.api import picture, to_json
    from modiste.design.pm import PMConfig
    from modiste.viz import save_png

    config = PMConfig(steps=steps, eta=eta, restarts=restarts, seed=seed)
    try:
        result = make_design(rec_run, gan_run, user, category, n=n, config=config, item=item, fit_steps=fit_steps)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    if out is not None:
        from modiste.rec.evaluate import run_dataset

        save_png(picture(result, run_dataset(rec_run)), out)
    data = to_json(result)
    if out is not None:
        data["picture"] = str(out)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if "tailor" in data:
        t = data["tailor"]
        table = Table("step", "preference", "realism (D-1)²", title=f"{t['item_id']} tailored to {user} "
                                                                 f"(the item itself: {t['item_score']:.3f})")
        for s in t["steps"]:
            table.add_row(str(s["step"]), f"{s['score']:.3f}", f"{s['realism']:.3f}")
    else:
        table = Table("#", "preference", "from", "realism (D-1)²", title=f"{category} designs for {user}")
        for d in data["designs"]:
            table.add_row(str(d["rank"]), f"{d['score']:.3f}", f"{d['start_score']:.3f}", f"{d['realism']:.3f}")
    console.print(table)
    if data["real"]:
        console.print(f"the best real {category} for {user}: {data['real'][0]['item_id']} "
                      f"(preference {data['real'][0]['score']:.3f})")
    if out is not None:
        console.print(f"wrote {out}")


@train_app.command("dual")
def train_dual_(
    data: Annotated[Path, typer.Option(help="dataset directory (with images and attributes)")],
    out: Annotated[Path, typer.Option(help="run directory (a later stage continues from its model)")],
    stage: Annotated[str, typer.Option(help="pretrain (every item) | condition (outfits, users) | text-aug "
                                            "(the text branch reads varied descriptions) | decoder (the "
                                            "decoder from latent and words to picture)")] = "pretrain",
    epochs: Annotated[int | None, typer.Option(help="at most this many epochs")] = None,
    minutes: Annotated[float | None, typer.Option(help="stop after this many minutes of training (default 45)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a network setting, e.g. --set dim=96")] = None,
    train_set: Annotated[list[str] | None, typer.Option("--train-set", help="a training setting, e.g. --train-set lr=1e-3")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the stage's last checkpoint")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Train the dual-diffusion transformer (picture + attribute text) one stage at a time."""
    from modiste.design.dual_train import train_dual

    _open(data)
    model_overrides, train_overrides = _overrides(set_, train_set, epochs, minutes)
    try:
        model = train_dual(data, out, stage=stage, model_overrides=model_overrides, train_overrides=train_overrides,
                           resume=resume, progress=not quiet)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    last = model.meta["history"][-1] if model.meta.get("history") else None
    if last:
        epochs = f"{last['epoch'] - 1} epochs and part of one" if last["partial"] else f"{last['epoch']} epochs"
        losses = (f"picture loss {last['image_loss']:.4f}" if last["text_loss"] is None else
                  f"image loss {last['image_loss']:.4f}, text loss {last['text_loss']:.4f}")
        console.print(f"{stage}: {epochs}, {last['train_seconds'] / 60:.1f} min; {losses}; model in {out / 'model'}")


@app.command()
def caption(
    run: Annotated[Path, typer.Option(help="a dual-model run")],
    item: Annotated[str, typer.Option(help="item id")],
    steps: Annotated[int, typer.Option(help="unmasking steps")] = 20,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Describe a catalogue item's picture in attribute words (the dual model's image to text)."""
    from modiste.design.dual_api import caption_item

    try:
        result = caption_item(run, item, steps=steps, seed=seed)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("attribute", "written", "true", title=f"{item}: {result['caption']}")
    for attribute, value in result["generated"].items():
        table.add_row(attribute, str(value), str(result["true"][attribute]))
    console.print(table)


generate_app = typer.Typer(help="Generate items with the dual model.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")


@generate_app.command("text")
def generate_text(
    description: Annotated[str, typer.Argument(help='what to draw, e.g. "a red striped casual shirt"')],
    run: Annotated[Path, typer.Option(help="a dual-model run")],
    out: Annotated[Path, typer.Option(help="PNG to draw the pictures to")],
    n: Annotated[int, typer.Option("-n", min=1, help="how many pictures")] = 4,
    steps: Annotated[int, typer.Option(help="sampling steps")] = 20,
    read: Annotated[str | None, typer.Option(
        help="words (the rule parser's values) | reading (the model reads the description: needs the text-aug "
             "stage) | both [default: both after text-aug, else words]")] = None,
    guidance: Annotated[float, typer.Option(help="classifier-free guidance scale of the description")] = 2.0,
    words_guidance: Annotated[float, typer.Option(help="guidance on the words: the picture follows them closer")] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Text to image: draw the described item; attributes the words leave open are chosen by the model."""
    from modiste.design.dual_api import draw_description
    from modiste.viz import contact_sheet, save_png

    try:
        drawn = draw_description(run, description, n=n, steps=steps, seed=seed, how=read, guidance=guidance,
                                 words_guidance=words_guidance)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    save_png(contact_sheet(list(drawn.images), drawn.captions, columns=min(n, 8), label_lines=2,
                           title=f"\u201c{description}\u201d"), out)
    data = {"description": description, "category": drawn.category, "given": drawn.given,
            "attributes": drawn.attributes, "captions": drawn.captions, "picture": str(out)}
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console.print(f"read: {drawn.category}, " + ", ".join(f"{a}={v}" for a, v in drawn.given.items()))
    for k, text in enumerate(drawn.captions):
        console.print(f"  {k + 1}. {text}")
    console.print(f"wrote {out}")


WORDS_TEMPERATURE = ("on the words: with written words, of the model's (1 by default, 0 writes the likeliest); "
                     "with preference words, each drawn with probability ~ count^(1/T) over the user's history "
                     "(by default the most frequent)")


def _guidance(pairs: list[str] | None) -> dict[str, float]:
    """--guidance preference=2 --guidance outfit=1.5 -> {"preference": 2.0, "outfit": 1.5}."""
    from modiste.design.dual import GUIDED

    out = {}
    for name, value in _settings(pairs or []).items():
        if name not in GUIDED:
            _fail(f"--guidance {name}: choose one of {', '.join(GUIDED)}")
        if not isinstance(value, (int, float)):
            _fail(f"--guidance {name}={value}: the scale must be a number")
        out[name] = float(value)
    return out


def _show_generated(result, run: Path, out: Path | None, title: str, as_json: bool) -> None:
    from modiste.design.dual_api import picture, run_dataset
    from modiste.viz import save_png

    data = result.to_json()
    if out is not None:
        save_png(picture(result, run_dataset(run), title), out)
        data["picture"] = str(out)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if result.context_ids:
        console.print(f"beside {', '.join(result.context_ids)} (the user chose {result.true_id}):")
    for k, item in enumerate(data["items"]):
        console.print(f"  {k + 1}. {item['caption']}")
    if out is not None:
        console.print(f"wrote {out}")


@generate_app.command("fitb")
def generate_fitb(
    run: Annotated[Path, typer.Option(help="a dual-model run")],
    user: Annotated[str, typer.Option(help="user id")],
    outfit: Annotated[str, typer.Option(help="outfit id")],
    blank: Annotated[int | None, typer.Option(help="the blank's position (default: the last item)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG: the outfit, the chosen item, what was made")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="how many items to make")] = 4,
    steps: Annotated[int, typer.Option(help="sampling steps")] = 20,
    guidance: Annotated[list[str] | None, typer.Option(
        help="a scale per condition or for the words, e.g. --guidance outfit=3 (default: 2 on each condition, "
             "3 on preferred words; 1: none)")] = None,
    words: Annotated[str, typer.Option(
        help="preference (the user's preferred values, drawn) | written (the model writes them)")] = "preference",
    temperature: Annotated[float | None, typer.Option(min=0, help=WORDS_TEMPERATURE)] = None,
    pool: Annotated[int, typer.Option(min=1, help="make n x POOL items and keep the n best by the judges")] = 1,
    rec_run: Annotated[Path | None, typer.Option("--rec-run", help="a DVBPR run: judges the pool by the user's taste")] = None,
    outfit_run: Annotated[Path | None, typer.Option(
        "--outfit-run", help="an outfit run: judges the pool by the completed outfit")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Personalized fill-in-the-blank, generated: new items (picture + words) for an outfit's blank;
    with --pool, generate then rank."""
    from modiste.design.dual_api import fill_blank, run_dataset
    from modiste.design.dual_rank import Judges

    try:
        judges = None
        if pool > 1 or rec_run or outfit_run:
            judges = Judges.load(rec_run, outfit_run, run_dataset(run).name)
        result = fill_blank(run, user, outfit, blank=blank, n=n, steps=steps, guidance=_guidance(guidance), seed=seed,
                            pool=pool, judges=judges, words=words, temperature=temperature)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    _show_generated(result, run, out, f"{outfit}'s blank, made for {user}", as_json)


@generate_app.command("outfit")
def generate_outfit(
    run: Annotated[Path, typer.Option(help="a dual-model run")],
    user: Annotated[str, typer.Option(help="user id")],
    categories: Annotated[str, typer.Option(help="comma-separated, e.g. top,trousers,shoes,bag")],
    out: Annotated[Path | None, typer.Option("--out", help="PNG of the outfit")] = None,
    steps: Annotated[int, typer.Option(help="sampling steps")] = 20,
    guidance: Annotated[list[str] | None, typer.Option(
        help="a scale per condition or for the words, e.g. --guidance outfit=3 (default: 2 on each condition, "
             "3 on preferred words; 1: none)")] = None,
    words: Annotated[str, typer.Option(
        help="preference (the user's preferred values, drawn) | written (the model writes them)")] = "preference",
    temperature: Annotated[float | None, typer.Option(min=0, help=WORDS_TEMPERATURE)] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Generative outfit recommendation: a whole outfit for a user, each item made beside the ones before."""
    from modiste.design.dual_api import make_outfit

    try:
        result = make_outfit(run, user, [c.strip() for c in categories.split(",") if c.strip()], steps=steps,
                             guidance=_guidance(guidance), seed=seed, words=words, temperature=temperature)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    _show_generated(result, run, out, f"an outfit made for {user}", as_json)


@bench_app.command("design")
def bench_design(
    data: Annotated[Path, typer.Option(help="dataset directory (a synthetic world, for the oracle)")],
    rec_run: Annotated[Path, typer.Option("--rec-run", help="a DVBPR training run")],
    gan_run: Annotated[Path, typer.Option("--gan-run", help="a GAN training run")],
    out: Annotated[Path, typer.Option(help="report directory (report.json, report.md, pictures)")],
    users: Annotated[int, typer.Option(help="users in the seeded sample")] = 30,
    n: Annotated[int, typer.Option("-n", min=2, help="designs per user and category")] = 8,
    steps: Annotated[int, typer.Option(help="Adam steps on z")] = 100,
    eta: Annotated[float, typer.Option(help="weight of the realism term")] = 1.0,
    restarts: Annotated[int, typer.Option(min=1, help="random starts per design")] = 2,
    probe_epochs: Annotated[int, typer.Option(help="epochs of the attribute classifier")] = 6,
    probe_items: Annotated[int, typer.Option(help="real items the attribute classifier trains on")] = 10000,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Preference maximisation against GAN samples, the top-1 recommended real item and random real
    items: preference, oracle utility (through an attribute classifier), diversity, FID per category."""
    from modiste.design.bench import BenchConfig, design_report

    _open(data)
    config = BenchConfig(users=users, n=n, steps=steps, eta=eta, restarts=restarts, probe_epochs=probe_epochs,
                         probe_items=probe_items)
    try:
        report = design_report(data, rec_run, gan_run, out, config, progress=not quiet)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    console.print((out / "report.md").read_text())
    console.print(f"wrote {out / 'report.json'} ({len(report['rows'])} rows)")


@bench_app.command("generate")
def bench_generate(
    data: Annotated[Path, typer.Option(help="dataset directory (a synthetic world adds the oracle's metrics)")],
    dual_run: Annotated[Path, typer.Option("--dual-run", help="a dual-model run")],
    out: Annotated[Path, typer.Option(help="report directory (report.json, report.md, pictures)")],
    image_only_run: Annotated[Path | None, typer.Option(
        "--image-only-run", help="an image-only dual run (--set text_stream=false), the DiFashion-like baseline")] = None,
    gan_run: Annotated[Path | None, typer.Option("--gan-run", help="a GAN run (design I)")] = None,
    outfit_run: Annotated[Path | None, typer.Option("--outfit-run", help="an outfit run: retrieval and compatibility")] = None,
    rec_run: Annotated[Path | None, typer.Option(
        "--rec-run", help="a DVBPR run: with the outfit run, judges generate-then-rank's pools")] = None,
    pool: Annotated[int, typer.Option(help="generate then rank: items made per question (1: no such row)")] = 2,
    questions: Annotated[int, typer.Option(help="PFITB questions from the test hard set")] = 200,
    samples: Annotated[int, typer.Option(min=1, help="items generated per question")] = 4,
    steps: Annotated[int, typer.Option(help="sampling steps")] = 20,
    guidance: Annotated[float, typer.Option(help="classifier-free guidance scale of every condition")] = 2.0,
    words_guidance: Annotated[float, typer.Option(
        help="guidance on the words, in the rows that draw the user's preferred words")] = 3.0,
    spread: Annotated[float, typer.Option(
        min=0, help="temperature of the row whose preferred words are drawn from the history (0: no such row)")] = 0.5,
    gor_users: Annotated[int, typer.Option(help="users to generate whole outfits for")] = 24,
    threads: Annotated[int, typer.Option(help="torch threads")] = 2,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Generative PFITB and GOR: the dual model against image-only diffusion, the GAN and retrieval;
    FID, category accuracy, IS, text-image alignment, personalization, compatibility, retrieval
    accuracy, diversity and the oracle's utility, with picture sheets."""
    from modiste.design.dual import CONDITIONS
    from modiste.design.generate_bench import GenerateBenchConfig, generate_report

    _open(data)
    config = GenerateBenchConfig(questions=questions, samples=samples, steps=steps,
                                 guidance={c: guidance for c in CONDITIONS}, gor_users=gor_users, pool=pool,
                                 words_guidance=words_guidance, spread=spread, threads=threads)
    try:
        report = generate_report(data, dual_run, out, image_only_run, gan_run, outfit_run, config, progress=not quiet,
                                 rec_run=rec_run)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    console.print((out / "report.md").read_text())
    console.print(f"wrote {out / 'report.json'} ({len(report['rows'])} rows)")


@bench_app.command("text-aug")
def bench_text_aug(
    data: Annotated[Path, typer.Option(help="dataset directory")],
    before: Annotated[Path, typer.Option(help="a dual-model run before its text-aug stage")],
    after: Annotated[Path, typer.Option(help="the same run after `modiste train dual --stage text-aug`")],
    out: Annotated[Path, typer.Option(help="report directory (report.json, report.md)")],
    items: Annotated[int, typer.Option(help="catalogue items described")] = 200,
    steps: Annotated[int, typer.Option(help="sampling steps")] = 20,
    guidance: Annotated[float, typer.Option(help="classifier-free guidance scale of the description")] = 2.0,
    threads: Annotated[int, typer.Option(help="torch threads")] = 2,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """What text-augmented fine-tuning changes: text to image from descriptions in training words,
    held-out words and the dataset's own phrasing (rule parser before, the model's reading after),
    captions, and the losses of PFITB's examples."""
    from modiste.design.text_bench import TextBenchConfig, text_aug_report

    _open(data)
    config = TextBenchConfig(items=items, steps=steps, guidance=guidance, threads=threads)
    try:
        text_aug_report(data, before, after, out, config, progress=not quiet)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(_message(e))
    console.print((out / "report.md").read_text())
    console.print(f"wrote {out / 'report.json'}")


# ---------------------------------------------------------------------------- the app

@app.command()
def serve(
    data: Annotated[Path, typer.Option(help="dataset directory")],
    db: Annotated[str | None, typer.Option(help="SQLAlchemy database URL (default: a SQLite file DATA/app.sqlite)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    rec_run: Annotated[Path | None, typer.Option("--rec-run", help="a ranking run on DATA (recommendations)")] = None,
    outfit_run: Annotated[Path | None, typer.Option("--outfit-run", help="an outfit run on DATA (complete, compose)")] = None,
    design_rec_run: Annotated[Path | None, typer.Option(
        "--design-rec-run", help="a DVBPR run on DATA: the taste designs are drawn toward (with --gan-run)")] = None,
    gan_run: Annotated[Path | None, typer.Option(
        "--gan-run", help="a GAN run on DATA: draws the designs (with --design-rec-run)")] = None,
    index: Annotated[str, typer.Option(help="top-k retrieval: flat (exact) | hnsw | ivf")] = "flat",
    search: Annotated[str | None, typer.Option(
        help="free-text search: sentence (by meaning) | keyword (every word) [default: sentence where its "
             "model's package is installed, else keyword]")] = None,
    issue_token: Annotated[str | None, typer.Option("--issue-token", metavar="USER",
                                                    help="print a new token for this dataset user and exit")] = None,
    reset_admin_token: Annotated[bool, typer.Option(help="print a new admin token and exit")] = False,
) -> None:
    """Serve the app: an HTTP API over a dataset and its runs, with each shopper's feedback stored
    (OpenAPI at /openapi.json). The first start prints the admin token."""
    from sqlalchemy.exc import SQLAlchemyError

    from modiste.app import server
    from modiste.app.index import IndexSpec
    from modiste.app.settings import Settings
    from modiste.app.textsearch import default_search

    try:
        settings = Settings(data=data, db=db, rec_run=rec_run, outfit_run=outfit_run, design_rec_run=design_rec_run,
                            gan_run=gan_run, index=IndexSpec(kind=index), search=search or default_search())
        if issue_token is not None:
            print(server.issue_token(settings, issue_token))
        elif reset_admin_token:
            print(server.new_admin_token(settings))
        else:
            server.run(settings, host, port, say=lambda line: print(line, flush=True))
    except (DatasetError, FileNotFoundError, KeyError, ValueError, SQLAlchemyError) as e:
        _fail(_message(e))


def _message(error: Exception) -> str:
    """An exception's message (a KeyError's str() wraps it in quotes)."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main() -> None:  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
