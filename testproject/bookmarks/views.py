"""Pages of the bookmarks site: every read page is a ``@cached_view``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.functional import SimpleLazyObject

from django_cachedeps.decorators import cached_view

from .forms import BookmarkForm
from .models import Bookmark, Tag

__all__ = ["home", "user_bookmarks", "tag_page", "add_bookmark", "edit_bookmark",
           "DEMO_USERNAME", "DEMO_PASSWORD", "PER_PAGE"]

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
PER_PAGE = 25
_ORDERS = {"date": ("-created", "-id"), "importance": ("-importance", "-created", "-id")}


@cached_view
def home(request: HttpRequest) -> HttpResponse:
    """Show the newest bookmarks of everyone and the people who saved them."""
    latest = Bookmark.objects.select_related("owner").order_by("-created", "-id")[:15]
    people = get_user_model().objects.filter(is_active=True).order_by("username")
    return render(request, "bookmarks/home.html", {
        "latest": latest, "people": people, "tags": Tag.objects.order_by("name"),
        "demo_username": DEMO_USERNAME, "demo_password": DEMO_PASSWORD,
    })


@cached_view
def user_bookmarks(request: HttpRequest, username: str) -> HttpResponse:
    """List one user's bookmarks by date (default) or by importance, 25 a page."""
    owner = get_object_or_404(get_user_model(), username=username)
    order = request.GET.get("order", "date")
    if order not in _ORDERS:
        order = "date"
    bookmarks = (Bookmark.objects.filter(owner_id=owner.pk).order_by(*_ORDERS[order])
                 .prefetch_related("tags"))
    page = Paginator(bookmarks, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "bookmarks/user.html", {"owner": owner, "page": page, "order": order})


@cached_view
def tag_page(request: HttpRequest, slug: str) -> HttpResponse:
    """List the newest bookmarks carrying a tag."""
    tag = get_object_or_404(Tag, slug=slug)
    # Two steps rather than a join: the page then depends on this tag's links and on the
    # listed bookmarks only, not on every bookmark (an IN list gives one key per value).
    ids = list(Bookmark.tags.through.objects.filter(tag_id=tag.pk)
               .values_list("bookmark_id", flat=True))
    bookmarks = (Bookmark.objects.filter(pk__in=ids).select_related("owner")
                 .order_by("-created", "-id"))
    page = Paginator(bookmarks, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "bookmarks/tag.html", {"tag": tag, "page": page})


@login_required
def add_bookmark(request: HttpRequest) -> HttpResponse:
    """Add a bookmark for the logged-in user."""
    from django.utils import timezone

    form = BookmarkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        bookmark = form.save(commit=False)
        bookmark.owner = request.user
        bookmark.created = timezone.now()
        bookmark.save()
        form.save_m2m()
        messages.success(request, f"Saved “{bookmark.title}”.")
        return redirect("user", username=request.user.get_username())
    return render(request, "bookmarks/form.html", {"form": form, "title": "Add a bookmark"})


@login_required
def edit_bookmark(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit one of the logged-in user's bookmarks.

    The form's fields are a ``{% cachedeps %}`` fragment of the page, the CSRF token is not
    (``bookmarks/form.html``): a new token is rendered into each page, around fields that
    come from the cache. The unbound form is built lazily, inside the fragment, so that the
    bookmark and tags it shows are read there and become the fragment's dependencies; the
    bookmark read here only checks that it is the user's.
    """
    bookmark = get_object_or_404(Bookmark, pk=pk, owner_id=request.user.pk)
    fragment = None
    if request.method == "POST":
        form = BookmarkForm(request.POST, instance=bookmark)
        if form.is_valid():
            form.save()
            messages.success(request, f"Updated “{bookmark.title}”.")
            return redirect("user", username=request.user.get_username())
    else:
        # The same query as above: read again inside the fragment, it is a hit.
        form = SimpleLazyObject(lambda: BookmarkForm(
            instance=Bookmark.objects.get(pk=pk, owner_id=request.user.pk)))
        fragment = pk
    return render(request, "bookmarks/form.html",
                  {"form": form, "title": "Edit a bookmark", "fragment": fragment})
