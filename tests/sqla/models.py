"""The mapped classes the SQLAlchemy adapter tests use."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Author", "Book", "Tag", "Review", "book_tag"]


class Base(DeclarativeBase):
    pass


book_tag = Table(
    "sq_book_tag",
    Base.metadata,
    Column("book_id", ForeignKey("sq_book.id"), primary_key=True),
    Column("tag_id", ForeignKey("sq_tag.id"), primary_key=True),
)


class Author(Base):
    __tablename__ = "sq_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "sq_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("sq_author.id"))
    title: Mapped[str] = mapped_column(String(200))
    pages: Mapped[int] = mapped_column(Integer, default=100)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'draft'"))
    author: Mapped[Author | None] = relationship(back_populates="books")
    tags: Mapped[list[Tag]] = relationship(secondary=book_tag, order_by="Tag.id")


class Tag(Base):
    __tablename__ = "sq_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Review(Base):
    """Deleted by the database with its book (no relationship: the ORM never sees it)."""

    __tablename__ = "sq_review"
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("sq_book.id", ondelete="CASCADE"))
    stars: Mapped[int]
