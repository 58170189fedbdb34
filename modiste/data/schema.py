"""The modiste dataset format: file names, columns and their types.

A dataset is a directory::

    manifest.json            what the dataset is (schema version, provenance, counts, splits)
    items.parquet            one row per item
    images.npy               optional: uint8 (n_items, 64, 64, 3), row i = items.parquet row i
    users.parquet            one row per user, with an optional body profile
    interactions.parquet     user_id, item_id, timestamp, split
    outfits.parquet          outfit_id, user_id, item_ids, categories, split
    fitb.parquet             optional: fill-in-the-blank questions over held-out outfits
    histories.parquet        optional: a user's items per category, as a release gives them (PFITB)
    compatibility.parquet    optional: outfit compatibility questions (a set of items; 1 real, 0 random)
    persons.parquet          optional: people with body attributes ...
    person_images.npy        ... their front-view avatars, uint8 (n_persons, 128, 64, 3)
    person_masks.npy         ... and pixel parse masks, uint8 (n_persons, 128, 64)
    oracle/                  optional: the ground truth of a synthetic world

Every table is checked against the column specs below when it is opened; see
`modiste.data.dataset.Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
ITEMS = "items.parquet"
IMAGES = "images.npy"
USERS = "users.parquet"
INTERACTIONS = "interactions.parquet"
OUTFITS = "outfits.parquet"
FITB = "fitb.parquet"
HISTORIES = "histories.parquet"
COMPATIBILITY = "compatibility.parquet"
PERSONS = "persons.parquet"
PERSON_IMAGES = "person_images.npy"
PERSON_MASKS = "person_masks.npy"
ORACLE_DIR = "oracle"

IMAGE_SIZE = 64  # items are IMAGE_SIZE x IMAGE_SIZE RGB
AVATAR_HEIGHT, AVATAR_WIDTH = 128, 64

SPLITS = ("train", "valid", "test")

# The structured caption of an item: a JSON object with exactly these keys (values may be null).
CAPTION_KEYS = ("Category", "Color", "Pattern", "Material", "Silhouette", "Design", "Style")

# Body labels of Outfit4You (O4U), used by FCN. All optional in users.parquet and persons.parquet.
BODY_FIELDS = ("body_figure", "skin_color", "hair_style", "hair_color", "height", "color_contrast")

# Labels of a person's parse mask, by pixel value.
MASK_LABELS = ("background", "hair", "face", "arms", "torso", "legs", "feet")

MANIFEST_REQUIRED = (
    "schema_version",
    "name",
    "source",
    "license",
    "counts",
    "splits",
    "has_images",
    "attributes",
)


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, its kind and whether it may hold nulls."""

    name: str
    kind: str  # "string" | "int" | "bool" | "string_list"
    nullable: bool = False


ITEM_COLUMNS = (
    Column("item_id", "string"),
    Column("category", "string"),
    Column("caption", "string"),
    Column("description", "string"),
)
# Plus one nullable string column per attribute named in the manifest's "attributes".

USER_COLUMNS = (Column("user_id", "string"),) + tuple(
    Column(f, "string", nullable=True) for f in BODY_FIELDS
)
INTERACTION_COLUMNS = (
    Column("user_id", "string"),
    Column("item_id", "string"),
    Column("timestamp", "int"),
    Column("split", "string"),
)
OUTFIT_COLUMNS = (
    Column("outfit_id", "string"),
    Column("user_id", "string", nullable=True),
    Column("item_ids", "string_list"),
    Column("categories", "string_list"),
    Column("split", "string"),
)
FITB_COLUMNS = (
    Column("question_id", "string"),
    Column("outfit_id", "string"),
    Column("user_id", "string", nullable=True),
    Column("blank_index", "int"),
    Column("candidates", "string_list"),
    Column("answer", "string"),
    Column("kind", "string"),
    Column("split", "string"),
)
# A release's own per-user, per-category histories (DiFashion's {train,valid,test}_history.npy):
# the items a personalized model may look at for that user and category in that split.
HISTORY_COLUMNS = (
    Column("user_id", "string"),
    Column("category", "string"),
    Column("item_ids", "string_list"),
    Column("split", "string"),
)
# A release's outfit compatibility questions (Polyvore Outfits' compatibility_{valid,test}.txt): a set of
# items and whether it is a real outfit (1) or one put together at random (0).
COMPATIBILITY_COLUMNS = (
    Column("question_id", "string"),
    Column("item_ids", "string_list"),
    Column("label", "int"),
    Column("split", "string"),
)
PERSON_COLUMNS = (Column("person_id", "string"), Column("user_id", "string", nullable=True)) + tuple(
    Column(f, "string", nullable=True) for f in BODY_FIELDS
)

# Which columns are optional in users.parquet / persons.parquet: the body fields.
OPTIONAL_COLUMNS = {USERS: set(BODY_FIELDS), PERSONS: set(BODY_FIELDS) | {"user_id"}}
