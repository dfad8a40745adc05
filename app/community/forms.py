"""Forms for writing articles and searching them."""

from django import forms

from community.models import Article, Community


class ArticleForm(forms.ModelForm):
    class Meta:
        model = Article
        fields = ["title", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 14})}


class SearchForm(forms.Form):
    q = forms.CharField(label="Search", max_length=200, required=False, strip=True)
    community = forms.ModelChoiceField(
        queryset=Community.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label="All communities",
    )
