"""Co-production tables: barrier ratings, co-design documents, Delphi studies, items and ratings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "barrier_ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("construct", sa.String(64), nullable=False),
        sa.Column("stakeholder_group", sa.String(32), nullable=False),
        sa.Column("valence", sa.Integer, nullable=False),
        sa.Column("importance", sa.Integer, nullable=True),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("project_id", "user_id", "site", "construct", name="uq_barrier_rating"),
    )
    op.create_index("ix_barrier_ratings_project_id", "barrier_ratings", ["project_id"])
    op.create_table(
        "codesign_documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint("project_id", "kind", name="uq_codesign_document"),
    )
    op.create_table(
        "delphi_studies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("rounds", sa.JSON, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_delphi_studies_project_id", "delphi_studies", ["project_id"])
    op.create_table(
        "delphi_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("delphi_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_delphi_items_study_id", "delphi_items", ["study_id"])
    op.create_table(
        "delphi_ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("delphi_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("delphi_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("stakeholder_group", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("item_id", "round", "user_id", name="uq_delphi_rating"),
    )
    op.create_index("ix_delphi_ratings_study_round", "delphi_ratings", ["study_id", "round"])


def downgrade() -> None:
    for table in ("delphi_ratings", "delphi_items", "delphi_studies", "codesign_documents", "barrier_ratings"):
        op.drop_table(table)
