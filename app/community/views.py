"""Pages of the demo community site; the rules they enforce live in models and states."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from community.forms import ArticleForm, SearchForm
from community.models import Article, Community, Membership
from community.states import TRANSITIONS, State, allowed_transitions

PAGE_SIZE = 20


def _paginate(request: HttpRequest, queryset: QuerySet) -> Page:
    # get_page() turns a missing or bad ?page= into the first or last page rather than an error.
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _communities_with_counts() -> QuerySet[Community]:
    return Community.objects.annotate(
        member_count=Count("memberships", distinct=True),
        published_count=Count("articles", filter=Q(articles__state=State.PUBLISHED), distinct=True),
    )


def _published() -> QuerySet[Article]:
    return Article.objects.filter(state=State.PUBLISHED).select_related("community", "author")


def _get_article(request: HttpRequest, community: str, article: int) -> Article:
    """The article if the user may see it; hidden states are a 404, so they reveal nothing."""
    found = get_object_or_404(
        Article.objects.select_related("community", "author"), pk=article, community__slug=community
    )
    if not found.can_view(request.user):
        raise Http404("No such article.")
    return found


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    my_communities = None
    if request.user.is_authenticated:
        my_communities = Community.objects.filter(memberships__user=request.user)
    return render(
        request,
        "community/home.html",
        {
            "communities": _communities_with_counts(),
            "recent": _published()[:8],
            "my_communities": my_communities,
        },
    )


@require_GET
def community_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "community/community_list.html", {"communities": _communities_with_counts()}
    )


@require_GET
def community_detail(request: HttpRequest, community: str) -> HttpResponse:
    found = get_object_or_404(Community, slug=community)
    role = found.role_of(request.user)
    awaiting = None
    if role == Membership.Role.MODERATOR:
        awaiting = found.articles.filter(state=State.SUBMITTED).select_related("author")
    return render(
        request,
        "community/community_detail.html",
        {
            "community": found,
            "role": role,
            "page": _paginate(request, _published().filter(community=found)),
            "awaiting": awaiting,
            "moderators": found.memberships.filter(role=Membership.Role.MODERATOR)
            .select_related("user")
            .order_by("user__username"),
            "member_count": found.memberships.count(),
        },
    )


@require_POST
@login_required
def community_join(request: HttpRequest, community: str) -> HttpResponse:
    found = get_object_or_404(Community, slug=community)
    _, created = found.join(request.user)
    if created:
        messages.success(request, f"Welcome to {found}! You can now write articles here.")
    else:
        messages.info(request, f"You are already a member of {found}.")
    return redirect(found)


@login_required
def article_create(request: HttpRequest, community: str) -> HttpResponse:
    found = get_object_or_404(Community, slug=community)
    if found.role_of(request.user) is None:
        raise PermissionDenied(f"Join {found} to write articles there.")
    form = ArticleForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        article = Article.start(
            community=found,
            author=request.user,
            title=form.cleaned_data["title"],
            body=form.cleaned_data["body"],
        )
        messages.success(request, "Draft saved. Submit it for review when it is ready.")
        return redirect(article)
    return render(request, "community/article_form.html", {"form": form, "community": found})


@require_GET
def article_detail(request: HttpRequest, community: str, article: int) -> HttpResponse:
    found = _get_article(request, community, article)
    return render(
        request,
        "community/article_detail.html",
        {
            "article": found,
            "community": found.community,
            "transitions": allowed_transitions(found, request.user),
            "can_edit": found.can_edit(request.user),
            "revisions": found.revisions.select_related("editor"),
        },
    )


@login_required
def article_edit(request: HttpRequest, community: str, article: int) -> HttpResponse:
    found = _get_article(request, community, article)
    if not found.can_edit(request.user):
        raise PermissionDenied(
            f"Only the author or a moderator of {found.community} may edit this article."
        )
    form = ArticleForm(request.POST if request.method == "POST" else None, instance=found)
    if form.is_valid():
        if form.has_changed():
            revision = found.edit(
                by=request.user, title=form.cleaned_data["title"], body=form.cleaned_data["body"]
            )
            messages.success(request, f"Saved as revision {revision.number}.")
        else:
            messages.info(request, "Nothing changed, so no new revision was kept.")
        return redirect(found)
    return render(
        request,
        "community/article_form.html",
        {"form": form, "community": found.community, "article": found},
    )


@require_POST
@login_required
def article_transition(
    request: HttpRequest, community: str, article: int, action: str
) -> HttpResponse:
    if action not in TRANSITIONS:
        raise Http404(f"No article action {action!r}.")
    found = _get_article(request, community, article)
    # A forbidden or stale action raises a TransitionError, which Django answers with a 403.
    applied = found.transition(action, by=request.user)
    messages.success(request, f"{found} is now {applied.target.label.lower()}.")
    return redirect(found)


@require_GET
def article_search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET if request.GET else None)
    page = None
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    elif form.is_bound:
        query, community = form.cleaned_data["q"], form.cleaned_data["community"]
        if query or community:
            results = _published()
            if query:
                results = results.filter(Q(title__icontains=query) | Q(body__icontains=query))
            if community:
                results = results.filter(community=community)
            page = _paginate(request, results)
    return render(request, "community/search.html", {"form": form, "page": page}, status=status)


@require_GET
@login_required
def my_articles(request: HttpRequest) -> HttpResponse:
    articles = list(Article.objects.filter(author=request.user).select_related("community"))
    groups = [(state, [a for a in articles if a.state == state]) for state in State]
    return render(request, "community/my_articles.html", {"groups": groups, "total": len(articles)})
