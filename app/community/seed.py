"""Deterministic demo data: users, communities, and articles moved by real transitions."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from community.models import Article, Community, Membership, Revision
from community.states import State

SEED = 20_240_601
ARTICLES_PER_COMMUNITY = 50
OTHER_USERS_PASSWORD = "demo-pass"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    note: str


# The logins a visitor is told about; each gets its own full-strength password hash.
DEMO_LOGINS = [
    DemoLogin("alice", "demo-pass-alice", "moderator of Urban Gardening and Home Espresso"),
    DemoLogin("bob", "demo-pass-bob", "member of Urban Gardening and Home Espresso"),
    DemoLogin("carol", "demo-pass-carol", "member of Trail Running and Retro Computing"),
    DemoLogin("admin", "demo-admin", "superuser, for /admin/"),
]

OTHER_USERNAMES = [
    "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken", "laura", "mallory",
    "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "wendy",
    "xavier", "yasmin", "zoe", "amir", "bianca", "chen", "dario", "elif", "farah", "gus",
    "hana", "igor", "jonas", "kemal", "lina", "marta", "noor", "otto", "priya", "rafael",
    "sana", "tomas", "uma", "vera", "wim", "yuki", "zara",
]

# Memberships the demo logins rely on; everyone else joins at random.
FIXED_MEMBERSHIPS = {
    "alice": {
        "urban-gardening": "moderator", "home-espresso": "moderator", "birdwatching": "member"
    },
    "bob": {"urban-gardening": "member", "home-espresso": "member"},
    "carol": {"trail-running": "member", "retro-computing": "member"},
}

# Articles the demo logins own, so each of them meets several states straight away.
PINNED_ARTICLES: dict[str, list[tuple[str, str]]] = {
    "urban-gardening": [
        ("bob", State.DRAFT), ("bob", State.SUBMITTED), ("bob", State.REJECTED),
        ("bob", State.PUBLISHED),
    ],
    "home-espresso": [("bob", State.PUBLISHED), ("alice", State.PUBLISHED)],
    "trail-running": [
        ("carol", State.DRAFT), ("carol", State.SUBMITTED), ("carol", State.PUBLISHED)
    ],
    "birdwatching": [("alice", State.SUBMITTED)],
}

# Target mix of the other articles. "redrafted" is a draft that went through rejection.
STATE_WEIGHTS: dict[str, int] = {
    State.PUBLISHED: 50, State.DRAFT: 12, State.SUBMITTED: 12, State.REJECTED: 8,
    State.ARCHIVED: 9, "redrafted": 9,
}


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str
    description: str
    subjects: list[str]
    sentences: list[str]


TOPICS = [
    Topic(
        "urban-gardening", "Urban Gardening",
        "Growing food and flowers on balconies, rooftops, windowsills and shared city plots.",
        ["balcony tomatoes", "rooftop beehives", "compost bins", "raised beds", "seed swaps",
         "herb spirals", "rainwater barrels", "microgreens", "community plots", "worm farms",
         "container potatoes", "shade-loving vegetables"],
        ["A south-facing balcony gets more heat than most people expect.",
         "Our plot association now shares tools from a single locker.",
         "Mulch saved us a lot of watering during the dry weeks.",
         "Aphids arrived in June and the ladybirds followed a week later.",
         "Most of the seedlings came from last spring's seed swap.",
         "The landlord agreed to the planters once we showed him the drainage plan.",
         "Coffee grounds went into the compost, not straight onto the beds.",
         "Neighbours took home more courgettes than we could count."],
    ),
    Topic(
        "home-espresso", "Home Espresso",
        "Grinders, machines, beans and the long road to a good shot in your own kitchen.",
        ["grind size", "single-dose grinders", "water hardness", "milk steaming", "light roasts",
         "pressure profiling", "descaling", "puck prep", "lever machines", "dialing in",
         "pre-infusion", "latte art"],
        ["Changing one variable at a time is slow but it is the only way to learn.",
         "Soft water made the biggest difference, more than the new basket.",
         "A cheap scale with a timer beats guessing every morning.",
         "The shot ran fast until I went three steps finer on the grinder.",
         "Fresh beans need a week to rest before they behave.",
         "Steaming milk quietly is mostly about where the tip sits.",
         "I keep a notebook of doses, yields and times for every bag.",
         "Descaling every two months keeps the boiler from sulking."],
    ),
    Topic(
        "trail-running", "Trail Running",
        "Running off-road: routes, gear, training plans and race reports.",
        ["hill repeats", "trail shoes", "night running", "ultra training", "race nutrition",
         "ankle strength", "poles on steep climbs", "route finding", "winter trails",
         "recovery weeks", "downhill technique", "hydration vests"],
        ["The first climb always feels worse than the last one.",
         "Short quick steps on the descent spared my knees.",
         "I carried too much water and not enough food.",
         "A headlamp with a spare battery turned a bad evening into a good one.",
         "Recovery weeks felt lazy but the next block was the best yet.",
         "The marked route and the map disagreed at two junctions.",
         "Grippy soles matter more than cushioning on wet rock.",
         "Running with the club on Thursdays kept me honest all winter."],
    ),
    Topic(
        "retro-computing", "Retro Computing",
        "Restoring, programming and collecting home computers from the 8-bit and 16-bit years.",
        ["capacitor replacement", "floppy drive repair", "BASIC listings", "CRT calibration",
         "SD card adapters", "demo scene", "assembly language", "keyboard restoration",
         "power supply recapping", "tape loading", "sound chips", "yellowed plastic"],
        ["The machine booted on the first try after the new capacitors went in.",
         "Typing in listings from old magazines teaches patience.",
         "The floppy drive needed nothing more than a clean belt.",
         "An SD adapter made loading software far less painful.",
         "The demo ran at full speed once the memory expansion was removed.",
         "Retrobright helped, but the case still shows its age.",
         "I found the original manual at a flea market for a euro.",
         "Measuring the supply rails first would have saved me an evening."],
    ),
    Topic(
        "birdwatching", "Birdwatching",
        "Sightings, field guides, binoculars and patient mornings outdoors.",
        ["dawn chorus", "binocular choice", "garden feeders", "migration counts", "owl walks",
         "wetland hides", "bird song apps", "field notebooks", "nest boxes", "winter flocks",
         "shorebird identification", "urban peregrines"],
        ["The first swifts came back two days earlier than last year.",
         "Learning songs before shapes made the mornings far richer.",
         "A tally sheet keeps a group count from turning into guesswork.",
         "The hide was quiet until a heron landed right in front of it.",
         "Cheap binoculars with a wide field of view are easier for beginners.",
         "Feeders need cleaning more often than most people think.",
         "Three of the nest boxes were used this spring.",
         "The peregrines on the church tower raised two chicks."],
    ),
    Topic(
        "amateur-astronomy", "Amateur Astronomy",
        "Telescopes, dark skies, star parties and photographing the night.",
        ["light pollution", "Dobsonian telescopes", "planetary imaging", "meteor showers",
         "collimation", "star hopping", "lunar observing", "dew heaters", "tracking mounts",
         "deep-sky objects", "solar filters", "observing logs"],
        ["Letting the mirror cool for an hour sharpened the view of Saturn.",
         "Star hopping with a paper chart still beats any app in the field.",
         "A red torch keeps everyone's night vision intact.",
         "The meteor count peaked just before dawn.",
         "Collimation took five minutes once I had done it twice.",
         "Dew ended the session earlier than the clouds did.",
         "Even from the city the Moon rewards every clear night.",
         "The club's loaner telescope got three new observers started this year."],
    ),
]

TITLE_PATTERNS = [
    "A beginner's guide to {s}", "What a year of {s} taught me", "{S}: five mistakes to avoid",
    "Notes on {s}", "Why {s} matter more than you think", "Ask the community: {s}",
    "Field report: {s}", "The case against {s}", "{S} on a budget", "Weekend project: {s}",
]
SHARED_SENTENCES = [
    "I would love to hear how others here approach {s}.",
    "Most of what I know about {s} I learned from people in this community.",
    "If you are new to {s}, start small and keep notes.",
    "There is a lot of conflicting advice about {s} online.",
    "Next month I want to try a different approach to {s}.",
]

EDIT_NOTES = [
    "A few readers asked about {s}, so I added more detail.",
    "Corrected the numbers after checking my notes.",
    "Thanks to everyone who commented; the second paragraph is clearer now.",
    "Added what went wrong the second time I tried {s}.",
    "Fixed a couple of typos.",
]


@dataclass(frozen=True)
class Step:
    action: str  # "edit" or a transition action
    username: str
    note: str = ""  # appended to the body by an edit


@dataclass
class ArticlePlan:
    community: str
    author: str
    title: str
    body: str
    days_ago: float
    steps: list[Step] = field(default_factory=list)


@dataclass
class Plan:
    memberships: dict[str, dict[str, str]]  # community slug -> username -> role
    articles: list[ArticlePlan]


@dataclass
class Result:
    users: int = 0
    communities: int = 0
    memberships: int = 0
    articles: int = 0
    revisions: int = 0
    transitions: int = 0


def _body(rng: random.Random, topic: Topic, subject: str) -> str:
    count = rng.randint(2, 4)
    # Sampled without replacement so no sentence repeats within one article.
    own, shared = rng.sample(topic.sentences, 2 * count), rng.sample(SHARED_SENTENCES, count)
    paragraphs = []
    for index in range(count):
        picked = [*own[2 * index : 2 * index + 2], shared[index]]
        rng.shuffle(picked)
        paragraphs.append(" ".join(s.format(s=subject) for s in picked))
    return "\n\n".join(paragraphs)


def _steps(
    rng: random.Random, target: str, author: str, moderators: list[str], subject: str
) -> list[Step]:
    """The edits and transitions that bring a new draft to ``target``."""
    others = [m for m in moderators if m != author] or moderators

    def moderator() -> str:
        return rng.choice(others)

    def edit(username: str) -> Step:
        return Step("edit", username, rng.choice(EDIT_NOTES).format(s=subject))

    steps = [edit(author)] if rng.random() < 0.3 else []
    if target == State.DRAFT:
        return steps
    steps.append(Step("submit", author))
    if target == State.SUBMITTED:
        return steps
    if target in (State.REJECTED, "redrafted"):
        steps.append(Step("reject", moderator()))
        if target == "redrafted":
            steps += [Step("redraft", author), edit(author)]
        return steps
    steps.append(Step("publish", moderator()))
    if rng.random() < 0.15:
        steps.append(edit(moderator()))
    if target == State.ARCHIVED:
        steps.append(Step("archive", rng.choice([author, moderator()])))
    return steps


def build_plan(seed: int = SEED) -> Plan:
    """Everything the seed will create, as plain data; the same seed gives the same plan."""
    rng = random.Random(seed)
    memberships: dict[str, dict[str, str]] = {topic.slug: {} for topic in TOPICS}
    for username, roles in FIXED_MEMBERSHIPS.items():
        for slug, role in roles.items():
            memberships[slug][username] = role
    for username in OTHER_USERNAMES:
        for topic in rng.sample(TOPICS, rng.randint(1, 4)):
            memberships[topic.slug][username] = Membership.Role.MEMBER
    for members in memberships.values():
        candidates = sorted(u for u in members if u not in FIXED_MEMBERSHIPS)
        wanted = 1 if Membership.Role.MODERATOR in members.values() else 2
        for username in rng.sample(candidates, wanted):
            members[username] = Membership.Role.MODERATOR

    articles = []
    targets, weights = list(STATE_WEIGHTS), list(STATE_WEIGHTS.values())
    for topic in TOPICS:
        members = memberships[topic.slug]
        moderators = sorted(u for u, role in members.items() if role == Membership.Role.MODERATOR)
        authors = sorted(members)
        pinned = PINNED_ARTICLES.get(topic.slug, [])
        titles = rng.sample(
            [(p, s) for p in TITLE_PATTERNS for s in topic.subjects], ARTICLES_PER_COMMUNITY
        )
        for index, (pattern, subject) in enumerate(titles):
            target: str
            if index < len(pinned):
                author, target = pinned[index]
            else:
                author, target = rng.choice(authors), rng.choices(targets, weights)[0]
            title = pattern.format(s=subject, S=subject[0].upper() + subject[1:])
            articles.append(
                ArticlePlan(
                    community=topic.slug,
                    author=author,
                    title=title,
                    body=_body(rng, topic, subject),
                    days_ago=rng.uniform(0.5, 120),
                    steps=_steps(rng, target, author, moderators, subject),
                )
            )
    return Plan(memberships=memberships, articles=articles)


def _ensure_users(now: datetime, result: Result) -> dict[str, Any]:
    User = get_user_model()
    wanted = [login.username for login in DEMO_LOGINS] + OTHER_USERNAMES
    existing = set(User.objects.filter(username__in=wanted).values_list("username", flat=True))
    passwords = {login.username: login.password for login in DEMO_LOGINS}
    shared_hash: str | None = None
    new_users = []
    for position, username in enumerate(wanted):
        if username in existing:
            continue
        if username in passwords:
            password_hash = make_password(passwords[username])
        else:
            # One hash for the shared password: hashing 47 passwords would take seconds.
            shared_hash = shared_hash or make_password(OTHER_USERS_PASSWORD)
            password_hash = shared_hash
        is_admin = username == "admin"
        new_users.append(
            User(
                username=username,
                password=password_hash,
                email=f"{username}@example.org",
                first_name="" if is_admin else username.capitalize(),
                is_staff=is_admin,
                is_superuser=is_admin,
                date_joined=now - timedelta(days=200 - position),
            )
        )
    User.objects.bulk_create(new_users)
    result.users = len(new_users)
    return {user.username: user for user in User.objects.filter(username__in=wanted)}


def _apply_steps(
    article: Article, steps: list[Step], users: dict[str, Any], result: Result
) -> None:
    for step in steps:
        actor = users[step.username]
        if step.action == "edit":
            body = f"{article.body}\n\nUpdate: {step.note}"
            article.edit(by=actor, title=article.title, body=body)
            result.revisions += 1
        else:
            article.transition(step.action, by=actor)
            result.transitions += 1


def seed(plan: Plan | None = None, log: Callable[[str], None] = lambda _: None) -> Result:
    """Create whatever part of the demo data is missing; communities that exist are left alone."""
    plan = plan or build_plan()
    result = Result()
    now = timezone.now()
    with transaction.atomic():
        users = _ensure_users(now, result)
        existing = set(Community.objects.values_list("slug", flat=True))
        new_topics = [topic for topic in TOPICS if topic.slug not in existing]
        communities = Community.objects.bulk_create(
            Community(
                name=topic.name,
                slug=topic.slug,
                description=topic.description,
                created_at=now - timedelta(days=180),
            )
            for topic in new_topics
        )
        result.communities = len(communities)
        by_slug = {community.slug: community for community in communities}
        memberships = [
            Membership(
                user=users[username],
                community=by_slug[slug],
                role=role,
                joined_at=now - timedelta(days=170 - index),
            )
            for slug in by_slug
            for index, (username, role) in enumerate(sorted(plan.memberships[slug].items()))
        ]
        Membership.objects.bulk_create(memberships)
        result.memberships = len(memberships)

        planned = [p for p in plan.articles if p.community in by_slug]
        articles = Article.objects.bulk_create(
            Article(
                community=by_slug[p.community],
                author=users[p.author],
                title=p.title,
                body=p.body,
                state=State.DRAFT,
                created_at=now - timedelta(days=p.days_ago),
            )
            for p in planned
        )
        Revision.objects.bulk_create(
            Revision(
                article=article,
                editor=article.author,
                title=article.title,
                body=article.body,
                number=1,
                created_at=article.created_at,
            )
            for article in articles
        )
        result.articles = result.revisions = len(articles)
        if articles:
            log(f"Moving {len(articles)} articles through their transitions...")
        for article, p in zip(articles, planned, strict=True):
            _apply_steps(article, p.steps, users, result)
        _ensure_video()
    return result


DEMO_VIDEO = "eventtrail/demo/demo.webm"


def _ensure_video() -> None:
    """One published article shows the demo video, so the site records video events."""
    if Article.objects.exclude(video="").exists():
        return
    first = Article.objects.filter(state=State.PUBLISHED).order_by("pk").first()
    if first is not None:
        Article.objects.filter(pk=first.pk).update(video=DEMO_VIDEO)
