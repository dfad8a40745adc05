"""Admin for the demo site; state edits here bypass the state machine on purpose (an override)."""

from django.contrib import admin
from django.http import HttpRequest

from community.models import Article, Community, Membership, Revision


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "community", "role", "joined_at"]
    list_filter = ["role", "community"]
    search_fields = ["user__username", "community__name"]
    autocomplete_fields = ["user", "community"]


class RevisionInline(admin.TabularInline):
    model = Revision
    extra = 0
    fields = ["number", "editor", "title", "created_at"]
    readonly_fields = ["number", "editor", "title", "created_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "community", "author", "state", "updated_at"]
    list_filter = ["state", "community"]
    search_fields = ["title", "body", "author__username"]
    autocomplete_fields = ["community", "author"]
    date_hierarchy = "created_at"
    inlines = [RevisionInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # Content changed in the admin is an edit like any other, so it keeps a revision too.
        if not change or {"title", "body"} & set(form.changed_data):
            obj.add_revision(editor=request.user)


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ["article", "number", "editor", "created_at"]
    search_fields = ["article__title", "title"]
    readonly_fields = ["article", "editor", "number", "title", "body", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
