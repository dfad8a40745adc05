"""URLs of the demo community site; other code keys events on these names and kwargs."""

from django.urls import URLPattern, URLResolver, path

from community import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("communities/", views.community_list, name="community-list"),
    path("search/", views.article_search, name="article-search"),
    path("me/articles/", views.my_articles, name="my-articles"),
    path("c/<slug:community>/", views.community_detail, name="community-detail"),
    path("c/<slug:community>/join/", views.community_join, name="community-join"),
    path("c/<slug:community>/new/", views.article_create, name="article-create"),
    path("c/<slug:community>/a/<int:article>/", views.article_detail, name="article-detail"),
    path("c/<slug:community>/a/<int:article>/edit/", views.article_edit, name="article-edit"),
    path(
        "c/<slug:community>/a/<int:article>/transition/<str:action>/",
        views.article_transition,
        name="article-transition",
    ),
]
