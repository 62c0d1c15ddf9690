"""Pictures: tutorials (with a small starter catalog), drawings and their
edits, picture stories; pending generations may be a picture story's.

Revision ID: 0012_pictures
Revises: 0011_council_plans_imports
Create Date: 2026-11-30
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_pictures"
down_revision: str | None = "0011_council_plans_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "stories"
KINDS_BEFORE = "kind IN ('opening', 'continuation', 'ending')"
KINDS_AFTER = "kind IN ('opening', 'continuation', 'ending', 'picture_story')"

# The starter catalog: fixed ids, so the seed is inserted once (ON CONFLICT
# DO NOTHING) and a superuser's later edits are never overwritten.
_IMAGES = "https://fabula.dev/tutorials"
STARTER_TUTORIALS = [
    {
        "id": uuid.UUID("6f1c2d1e-0001-4000-8000-000000000001"),
        "category": "animals",
        "title_en": "A Sitting Cat",
        "title_de": "Eine sitzende Katze",
        "description_en": "Draw a friendly cat from circles and triangles.",
        "description_de": "Zeichne eine freundliche Katze aus Kreisen und Dreiecken.",
        "steps": [
            ("Draw a big circle for the body.", "Zeichne einen großen Kreis für den Körper."),
            ("Add a smaller circle on top for the head.", "Setze einen kleineren Kreis als Kopf darauf."),
            ("Give the head two triangle ears.", "Gib dem Kopf zwei dreieckige Ohren."),
            ("Draw eyes, a nose and whiskers.", "Zeichne Augen, eine Nase und Schnurrhaare."),
            ("Finish with a long curly tail.", "Zum Schluss ein langer, geringelter Schwanz."),
        ],
    },
    {
        "id": uuid.UUID("6f1c2d1e-0001-4000-8000-000000000002"),
        "category": "nature",
        "title_en": "A Tree in Spring",
        "title_de": "Ein Baum im Frühling",
        "description_en": "A tall tree with a round crown and blossoms.",
        "description_de": "Ein hoher Baum mit runder Krone und Blüten.",
        "steps": [
            ("Draw two lines for the trunk.", "Zeichne zwei Linien für den Stamm."),
            ("Add branches that split like a Y.", "Füge Äste hinzu, die sich wie ein Y teilen."),
            ("Draw a big cloudy crown around the branches.", "Zeichne eine große, wolkige Krone um die Äste."),
            ("Dot little blossoms all over the crown.", "Tupfe kleine Blüten über die ganze Krone."),
        ],
    },
    {
        "id": uuid.UUID("6f1c2d1e-0001-4000-8000-000000000003"),
        "category": "vehicles",
        "title_en": "A Little Rocket",
        "title_de": "Eine kleine Rakete",
        "description_en": "A rocket ready to fly to the moon.",
        "description_de": "Eine Rakete, bereit zum Flug zum Mond.",
        "steps": [
            ("Draw a tall rounded rectangle.", "Zeichne ein hohes, abgerundetes Rechteck."),
            ("Put a pointed cone on top.", "Setze eine spitze Kegelform oben drauf."),
            ("Add two fins at the bottom.", "Füge unten zwei Flossen hinzu."),
            ("Draw a round window and flames below.", "Zeichne ein rundes Fenster und Flammen darunter."),
        ],
    },
]


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "tutorials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("title_en", sa.String(200), nullable=False),
        sa.Column("title_de", sa.String(200), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("description_de", sa.Text(), nullable=False),
        sa.Column("thumbnail_url", sa.String(2000), nullable=False),
        sa.Column("steps", postgresql.JSONB(), nullable=False),
        _created_at(),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tutorials"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_tutorials_category_created_at", "tutorials", ["category", "created_at"], schema=SCHEMA
    )
    op.create_table(
        "drawings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("photo_id", sa.String(64), nullable=False),
        sa.Column("tutorial_id", sa.Uuid()),
        sa.Column("photo_available", sa.Boolean(), nullable=False, server_default="true"),
        _created_at(),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_drawings"),
        sa.ForeignKeyConstraint(
            ["tutorial_id"],
            [f"{SCHEMA}.tutorials.id"],
            name="fk_drawings_tutorial_id_tutorials",
            ondelete="SET NULL",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_drawings_user_id_created_at_id",
        "drawings",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index("ix_drawings_photo_id", "drawings", ["photo_id"], schema=SCHEMA)
    op.create_table(
        "drawing_edits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("drawing_id", sa.Uuid(), nullable=False),
        sa.Column("photo_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_drawing_edits"),
        sa.ForeignKeyConstraint(
            ["drawing_id"],
            [f"{SCHEMA}.drawings.id"],
            name="fk_drawing_edits_drawing_id_drawings",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_drawing_edits_drawing_id_version",
        "drawing_edits",
        ["drawing_id", "version"],
        unique=True,
        schema=SCHEMA,
    )
    op.create_index("ix_drawing_edits_photo_id", "drawing_edits", ["photo_id"], schema=SCHEMA)
    op.create_table(
        "picture_stories",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("drawing_id", sa.Uuid(), nullable=False),
        sa.Column("photo_id", sa.String(64), nullable=False),
        sa.Column("title_en", sa.String(200), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("title_de", sa.String(200), nullable=False),
        sa.Column("text_de", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False, server_default=""),
        sa.Column("generation_time_ms", sa.Integer(), nullable=False),
        sa.Column("is_favorite", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("moderation", postgresql.JSONB(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("is_language_model", sa.Boolean(), nullable=False),
        _created_at(),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_picture_stories"),
        sa.ForeignKeyConstraint(
            ["drawing_id"],
            [f"{SCHEMA}.drawings.id"],
            name="fk_picture_stories_drawing_id_drawings",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "generation_time_ms >= 0",
            name="ck_picture_stories_generation_time_not_negative",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_picture_stories_user_id_created_at_id",
        "picture_stories",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_picture_stories_drawing_id", "picture_stories", ["drawing_id"], schema=SCHEMA
    )
    op.drop_constraint(
        "ck_pending_generations_kind_known", "pending_generations", schema=SCHEMA, type_="check"
    )
    op.create_check_constraint(
        "ck_pending_generations_kind_known", "pending_generations", KINDS_AFTER, schema=SCHEMA
    )
    _seed_tutorials()


def _seed_tutorials() -> None:
    tutorials = sa.table(
        "tutorials",
        sa.column("id", sa.Uuid()),
        sa.column("category", sa.String()),
        sa.column("title_en", sa.String()),
        sa.column("title_de", sa.String()),
        sa.column("description_en", sa.Text()),
        sa.column("description_de", sa.Text()),
        sa.column("thumbnail_url", sa.String()),
        sa.column("steps", postgresql.JSONB()),
        schema=SCHEMA,
    )
    rows = []
    for tutorial in STARTER_TUTORIALS:
        slug = tutorial["category"] + "-" + str(tutorial["id"])[-1]
        steps = [
            {
                "step_number": number,
                "instruction_en": en,
                "instruction_de": de,
                "image_url": f"{_IMAGES}/{slug}/step-{number}.png",
            }
            for number, (en, de) in enumerate(tutorial["steps"], start=1)
        ]
        rows.append(
            {
                **{key: value for key, value in tutorial.items() if key != "steps"},
                "thumbnail_url": f"{_IMAGES}/{slug}/thumbnail.png",
                "steps": json.loads(json.dumps(steps)),
            }
        )
    op.execute(
        postgresql.insert(tutorials).values(rows).on_conflict_do_nothing(index_elements=["id"])
    )


def downgrade() -> None:
    op.execute(
        sa.text(f"DELETE FROM {SCHEMA}.pending_generations WHERE kind = 'picture_story'")
    )
    op.drop_constraint(
        "ck_pending_generations_kind_known", "pending_generations", schema=SCHEMA, type_="check"
    )
    op.create_check_constraint(
        "ck_pending_generations_kind_known", "pending_generations", KINDS_BEFORE, schema=SCHEMA
    )
    op.drop_table("picture_stories", schema=SCHEMA)
    op.drop_table("drawing_edits", schema=SCHEMA)
    op.drop_table("drawings", schema=SCHEMA)
    op.drop_table("tutorials", schema=SCHEMA)
