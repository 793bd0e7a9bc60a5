"""The form to add and edit bookmarks."""

from __future__ import annotations

from django import forms

from .models import Bookmark

__all__ = ["BookmarkForm"]


class BookmarkForm(forms.ModelForm):
    """Add or edit one bookmark."""

    class Meta:
        model = Bookmark
        fields = ["url", "title", "description", "importance", "tags"]
        widgets = {"tags": forms.CheckboxSelectMultiple}

    def clean_importance(self) -> int:
        """Accept an importance from 1 to 5."""
        value = self.cleaned_data["importance"]
        if not 1 <= value <= 5:
            raise forms.ValidationError("Importance goes from 1 (low) to 5 (high).")
        return value
