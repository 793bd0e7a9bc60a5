"""The form to add and edit bookmarks."""

from __future__ import annotations

from typing import Any, Iterator

from django import forms
from django.forms.models import ModelChoiceIterator

from .models import Bookmark

__all__ = ["BookmarkForm"]


class _Choices(ModelChoiceIterator):
    """The choices read with one plain query of the field's queryset.

    Django's iterator reads them with ``.iterator()`` (a server-side cursor on PostgreSQL),
    which cachedeps does not cache: the edit form's cached fragment would never be stored.
    """

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class TagsField(forms.ModelMultipleChoiceField):
    """The bookmark's tags, as checkboxes."""

    iterator = _Choices


class BookmarkForm(forms.ModelForm):
    """Add or edit one bookmark."""

    class Meta:
        model = Bookmark
        fields = ["url", "title", "description", "importance", "tags"]
        widgets = {"tags": forms.CheckboxSelectMultiple}
        field_classes = {"tags": TagsField}

    def clean_importance(self) -> int:
        """Accept an importance from 1 to 5."""
        value = self.cleaned_data["importance"]
        if not 1 <= value <= 5:
            raise forms.ValidationError("Importance goes from 1 (low) to 5 (high).")
        return value
