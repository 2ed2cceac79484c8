"""Made-up people and their everyday facts, with questions about them, for conversation QA.

The fact benchmarks teach a memory to answer questions about the world ("The Eiffel Tower is
in Paris."). An agent's memory holds what people said about themselves ("I live in Porto.",
"Maya: my manager is Sabine.") and is asked in other words ("Where am I based?", "Who does
Maya report to?"), with several facts of the same person read together. This module writes
such profiles from templates: each profile is one person's facts, stated in the first person
(the user), the third person ("Maya lives in Lyon.") or as a speaker's turn
("Maya: I live in Lyon."), each fact with the questions that ask for it and its answer, a span
of the fact. Nothing here comes from an evaluation set; the pools and wordings are our own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Profile", "ProfileFact", "RELATIONS", "make_profiles"]


def _items(text: str) -> list[str]:
    """A pool written as ``a|b|c``."""
    return text.split("|")


FIRST_NAMES = (
    "Maya Jonas Aisha Tomasz Lucia Kenji Ingrid Rafael Noor Elif Mateo Sofia Dmitri Amara Leon "
    "Chiara Oskar Hana Diego Freya Tariq Nadia Emil Zara Bruno Ayla Viktor Keiko Samir Greta "
    "Luca Imani Pablo Signe Arjun Mireille Tobias Yara Felipe Astrid Kwame Lena Ravi Ines Milo "
    "Selin Hugo Anouk Idris Clara Mads Priyanka Joaquin Elsa Omar Vera Nikolai Thandi Pietro "
    "Sunniva Farid Beatriz Anton Leila Callum Marisol Jakob Wen Dario Fatima Ruben Aoife Sanjay"
).split()

SURNAMES = (
    "Okafor Lindqvist Moreau Kowalski Tanaka Haddad Rossi Novak Fernandes Byrne Schultz Petrov "
    "Nakamura Ortega Jensen Mensah Dubois Kaplan Silva Horvat Yilmaz Andersen Costa Varga Murphy "
    "Castillo Brandt Sato Osei Laurent Kuznetsov Ferreira Nilsen Abara Weber Rinaldi"
).split()

CITIES = (
    "Porto Lyon Leeds Gdansk Utrecht Valencia Graz Tampere Bergen Cork Bologna Ghent Malmo "
    "Aarhus Krakow Seville Turin Nantes Bilbao Dresden Brno Tartu Split Lausanne Nagoya Osaka "
    "Busan Pune Mombasa Accra Curitiba Rosario Quito Halifax Tucson Denver Austin Perth Hobart "
    "Dunedin Wellington Montreal Lisbon Vienna Oslo Riga Vilnius Zagreb Sofia Tbilisi Antwerp"
).split()

COUNTRIES = (
    "Portugal Norway Chile Kenya Vietnam Canada Ireland Japan Morocco Peru Finland Greece "
    "Ghana Estonia Mexico Iceland Croatia Argentina Denmark Scotland Brazil Slovenia"
).split()

COMPANIES = (
    "Zalando Spotify Siemens Philips Klarna Nokia Ericsson Adyen Booking.com Canva Atlassian "
    "Shopify Bosch Decathlon Ikea Lego Vestas Wise Monzo Revolut Miro Figma Deliveroo Ocado "
    "Airbus Renault Heineken Unilever SAP Infosys Wipro Rakuten Sony Fujitsu Tata Embraer"
).split()

JOBS = _items(
    "nurse|data analyst|carpenter|pharmacist|architect|backend developer|teacher|"
    "electrician|translator|physiotherapist|sound engineer|paramedic|accountant|florist|"
    "librarian|chef|pilot|lab technician|journalist|tax adviser|dentist|vet|surveyor|baker"
)



INSTRUMENTS = _items("cello|violin|piano|drums|bass guitar|trumpet|saxophone|ukulele|harp|flute|"
                     "accordion")
SPORTS = _items("bouldering|rowing|fencing|judo|squash|tennis|cycling|swimming|badminton|"
                "volleyball|netball|handball")
FOODS = _items("ramen|paella|falafel|pierogi|dumplings|lasagne|tacos|curry|sushi|risotto|goulash|"
               "pho")
DRINKS = _items("green tea|oat flat white|espresso|chai|rooibos|black coffee|mint tea|cocoa")
SPECIES = _items("cat|dog|rabbit|parrot|tortoise|hamster|greyhound|labrador|ferret")
PET_NAMES = _items("Miso|Bolt|Pepper|Tofu|Biscuit|Luna|Ziggy|Mochi|Olive|Rocket|Nacho|Pixel|"
                   "Juniper|Clementine|Waffles|Pickle")
LANGUAGES = _items("Japanese|Spanish|Portuguese|Korean|Italian|Dutch|Polish|Arabic|Finnish|Greek|"
                   "Swahili|Turkish")
COLOURS = _items("teal|mustard yellow|navy|burgundy|olive green|lilac|coral|charcoal")
SUBJECTS = _items("marine biology|medieval history|quantum chemistry|urban planning|linguistics|"
                  "machine learning|econometrics|soil science|art history|public health|"
                  "glaciology")
CARS = _items("a red Skoda Fabia|a grey Toyota Yaris|a blue Volvo V60|an old Fiat Panda|"
              "a white Renault Zoe|a green Mini Cooper")
WEEKDAYS = _items("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
MONTHS = _items("January|February|March|April|May|June|July|August|September|October|November|"
                "December")
TITLE_WORDS_A = _items("Quiet|Silver|Northern|Hidden|Last|Little|Broken|Endless|Paper|Winter|"
                       "Golden|Distant")
TITLE_WORDS_B = _items("Harbour|Orchard|Signal|Garden|Lantern|River|Atlas|Machine|Kingdom|"
                       "Compass|Tide|Archive")
HOBBIES = _items("pottery|bird watching|sourdough baking|knitting|chess|salsa dancing|"
                 "woodworking|film photography|gardening|calligraphy")
STREETS = _items("Elm Road|Harbour Street|Mill Lane|Rua das Flores|Calle Mayor|Station Road|"
                 "Kastanienallee|Via Roma")


def _name(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)


def _date(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"


def _time(rng: random.Random) -> str:
    hour = rng.choice([6, 7, 8, 9, 10, 11, 1, 2, 3, 4, 5, 6, 7, 8])
    return f"{hour}:{rng.choice(['00', '15', '30', '45'])}"


def _title(rng: random.Random) -> str:
    return f"The {rng.choice(TITLE_WORDS_A)} {rng.choice(TITLE_WORDS_B)}"


def _handle(rng: random.Random) -> str:
    word = rng.choice(TITLE_WORDS_A + TITLE_WORDS_B + PET_NAMES)
    return f"{word}{rng.choice(['_', '', '.'])}{rng.randint(7, 99)}"


def _email(rng: random.Random, person: str) -> str:
    host = rng.choice(["fastmail.com", "posteo.de", "proton.me", "gmail.com", "outlook.com"])
    return f"{person.lower()}.{rng.choice(SURNAMES).lower()}@{host}"


def _code(rng: random.Random) -> str:
    return f"{rng.choice('ABKLMQRTXZ')}{rng.choice('ABKLMQRTXZ')}-{rng.randint(10000, 99999)}"


@dataclass(frozen=True)
class Relation:
    """One kind of everyday fact: how a value is drawn, how the fact is said, how it is asked.

    Templates use ``{v}`` for the value, ``{n}`` for the person (third-person ones) and ``{s}``
    for a pet's species; a fact's statement and question are drawn independently."""

    key: str
    draw: Callable[[random.Random, str], str]
    first: tuple[str, ...]
    ask_first: tuple[str, ...]
    third: tuple[str, ...]
    ask_third: tuple[str, ...]


def _pool(values: list[str]) -> Callable[[random.Random, str], str]:
    return lambda rng, person: rng.choice(values)


def _rel(
    key: str,
    draw: Callable[[random.Random, str], str],
    first: list[str],
    ask_first: list[str],
    third: list[str],
    ask_third: list[str],
) -> Relation:
    return Relation(key, draw, tuple(first), tuple(ask_first), tuple(third), tuple(ask_third))


def _who(role: str, *asks_first: str, asks_third: tuple[str, ...] = ()) -> Relation:
    """A person in the user's life (manager, coach, landlord…), named by first name."""
    return _rel(
        role.replace(" ", "_"),
        lambda rng, person: _name(rng),
        [f"My {role} is {{v}}.", f"My {role} is called {{v}}.", f"{{v}} is my {role}."],
        [
            f"Who is my {role}?",
            f"What is my {role}'s name?",
            f"What's my {role} called?",
            *asks_first,
        ],
        [f"{{n}}'s {role} is {{v}}.", f"{{n}}'s {role} is called {{v}}."],
        [f"Who is {{n}}'s {role}?", f"What is the name of {{n}}'s {role}?", *asks_third],
    )


RELATIONS: tuple[Relation, ...] = (
    _rel(
        "home",
        _pool(CITIES),
        ["I live in {v}.", "I'm based in {v}.", "I moved to {v}.", "Home for me is {v} now."],
        [
            "Where do I live?",
            "Which city am I based in?",
            "Where am I living now?",
            "What city do I live in?",
            "Where's home for me?",
        ],
        ["{n} lives in {v}.", "{n} is based in {v}.", "{n} moved to {v}."],
        ["Where does {n} live?", "Which city is {n} based in?", "Where is {n} living now?"],
    ),
    _rel(
        "hometown",
        _pool(CITIES),
        ["I grew up in {v}.", "I was born in {v}.", "My hometown is {v}."],
        ["Where did I grow up?", "Where was I born?", "What is my hometown?"],
        ["{n} grew up in {v}.", "{n} was born in {v}."],
        ["Where did {n} grow up?", "Where was {n} born?", "What is {n}'s hometown?"],
    ),
    _rel(
        "employer",
        _pool(COMPANIES),
        [
            "I work at {v}.",
            "I work for {v}.",
            "I just started a job at {v}.",
            "My employer is {v}.",
        ],
        [
            "Where do I work?",
            "Which company do I work for?",
            "Who is my employer?",
            "What company am I at?",
        ],
        ["{n} works at {v}.", "{n} works for {v}.", "{n} got a job at {v}."],
        ["Where does {n} work?", "Which company does {n} work for?", "Who employs {n}?"],
    ),
    _rel(
        "job",
        _pool(JOBS),
        ["I work as a {v}.", "I'm a {v}.", "My job is {v}."],
        [
            "What is my job?",
            "What do I do for a living?",
            "What's my profession?",
            "What do I work as?",
        ],
        ["{n} works as a {v}.", "{n} is a {v}."],
        ["What does {n} do for a living?", "What is {n}'s job?", "What does {n} work as?"],
    ),
    _rel(
        "pet",
        lambda rng, person: rng.choice(PET_NAMES),
        ["My {s} is called {v}.", "I have a {s} called {v}.", "My {s}'s name is {v}."],
        ["What's my {s}'s name?", "What is my {s} called?", "What did I name my {s}?"],
        ["{n}'s {s} is called {v}.", "{n} has a {s} called {v}."],
        ["What is {n}'s {s} called?", "What's the name of {n}'s {s}?"],
    ),
    _rel(
        "instrument",
        _pool(INSTRUMENTS),
        ["I play the {v}.", "I'm learning the {v}.", "I took up the {v}."],
        ["Which instrument do I play?", "What instrument am I learning?", "What do I play?"],
        ["{n} plays the {v}.", "{n} is learning the {v}."],
        ["Which instrument does {n} play?", "What instrument is {n} learning?"],
    ),
    _rel(
        "sport",
        _pool(SPORTS),
        ["I do {v} twice a week.", "My sport is {v}.", "I've been doing {v} for years."],
        ["What sport do I do?", "Which sport am I into?", "What sport do I play?"],
        ["{n} does {v} twice a week.", "{n}'s sport is {v}."],
        ["What sport does {n} do?", "Which sport is {n} into?"],
    ),
    _rel(
        "food",
        _pool(FOODS),
        [
            "My favourite food is {v}.",
            "I love {v} more than anything.",
            "I could eat {v} every day.",
        ],
        ["What's my favourite food?", "What food do I love?", "What do I like to eat most?"],
        ["{n}'s favourite food is {v}.", "{n} loves {v}."],
        ["What is {n}'s favourite food?", "What food does {n} love?"],
    ),
    _rel(
        "drink",
        _pool(DRINKS),
        ["I always drink {v} in the morning.", "My usual order is {v}.", "I prefer {v}."],
        ["What's my usual drink?", "What do I like to drink?", "What should you get me to drink?"],
        ["{n} always drinks {v} in the morning.", "{n}'s usual order is {v}."],
        ["What does {n} like to drink?", "What is {n}'s usual drink?"],
    ),
    _rel(
        "language",
        _pool(LANGUAGES),
        ["I'm learning {v}.", "I study {v} in the evenings.", "I'm taking {v} classes."],
        ["Which language am I learning?", "What language do I study?"],
        ["{n} is learning {v}.", "{n} studies {v} in the evenings."],
        ["Which language is {n} learning?", "What language does {n} study?"],
    ),
    _rel(
        "birthday",
        lambda rng, person: _date(rng),
        ["My birthday is on {v}.", "I was born on {v}.", "My birthday's {v}."],
        ["When is my birthday?", "What's my date of birth?", "When do I celebrate my birthday?"],
        ["{n}'s birthday is on {v}.", "{n} was born on {v}."],
        ["When is {n}'s birthday?", "When was {n} born?"],
    ),
    _rel(
        "appointment",
        lambda rng, person: _date(rng),
        ["My dentist appointment is on {v}.", "I see the dentist on {v}."],
        ["When is my dentist appointment?", "When do I see the dentist?"],
        ["{n}'s dentist appointment is on {v}.", "{n} sees the dentist on {v}."],
        ["When is {n}'s dentist appointment?", "When does {n} see the dentist?"],
    ),
    _rel(
        "flight",
        lambda rng, person: _date(rng),
        ["My flight leaves on {v}.", "I fly out on {v}.", "My flight is on {v}."],
        ["When is my flight?", "When do I fly out?", "What day does my flight leave?"],
        ["{n}'s flight leaves on {v}.", "{n} flies out on {v}."],
        ["When is {n}'s flight?", "When does {n} fly out?"],
    ),
    _rel(
        "deadline",
        lambda rng, person: _date(rng),
        ["My report is due on {v}.", "The deadline for my report is {v}."],
        ["When is my report due?", "What's my report deadline?"],
        ["{n}'s report is due on {v}.", "The deadline for {n}'s report is {v}."],
        ["When is {n}'s report due?", "What is {n}'s deadline?"],
    ),
    _rel(
        "class_day",
        _pool(WEEKDAYS),
        ["My evening class is on {v}s.", "I go to my evening class every {v}."],
        [
            "When is my evening class?",
            "Which day is my evening class?",
            "What day do I have class?",
        ],
        ["{n}'s evening class is on {v}s.", "{n} goes to an evening class every {v}."],
        ["Which day is {n}'s class?", "When does {n} go to class?"],
    ),
    _rel(
        "alarm",
        lambda rng, person: _time(rng),
        ["I get up at {v} every day.", "My alarm goes off at {v}."],
        ["What time do I get up?", "When does my alarm go off?"],
        ["{n} gets up at {v} every day.", "{n}'s alarm goes off at {v}."],
        ["What time does {n} get up?", "When does {n}'s alarm go off?"],
    ),
    _rel(
        "kids",
        lambda rng, person: str(rng.randint(1, 5)),
        ["I have {v} kids.", "I've got {v} children."],
        ["How many kids do I have?", "How many children have I got?"],
        ["{n} has {v} kids.", "{n} has {v} children."],
        ["How many kids does {n} have?", "How many children does {n} have?"],
    ),
    _rel(
        "age",
        lambda rng, person: str(rng.randint(19, 71)),
        ["I am {v} years old.", "I turned {v} this year.", "I'm {v}."],
        ["How old am I?", "What is my age?", "How old did I turn this year?"],
        ["{n} is {v} years old.", "{n} turned {v} this year."],
        ["How old is {n}?", "What is {n}'s age?"],
    ),
    _rel(
        "commute",
        lambda rng, person: f"{rng.choice([10, 15, 20, 25, 30, 40, 45, 50, 60])} minutes",
        ["My commute takes {v}.", "It takes me {v} to get to work."],
        ["How long is my commute?", "How long does it take me to get to work?"],
        ["{n}'s commute takes {v}.", "It takes {n} {v} to get to work."],
        ["How long is {n}'s commute?", "How long does {n} take to get to work?"],
    ),
    _rel(
        "rent",
        lambda rng, person: f"{rng.choice(['€', '£', '$'])}{rng.randint(6, 24) * 50}",
        ["My rent is {v} a month.", "I pay {v} in rent every month."],
        ["How much is my rent?", "What do I pay in rent?", "How much rent do I pay?"],
        ["{n}'s rent is {v} a month.", "{n} pays {v} in rent."],
        ["How much is {n}'s rent?", "How much rent does {n} pay?"],
    ),
    _rel(
        "email",
        lambda rng, person: _email(rng, person),
        ["My email is {v}.", "My email address is {v}.", "You can reach me at {v}."],
        ["What's my email?", "What is my email address?", "Where can I be reached by email?"],
        ["{n}'s email is {v}.", "{n}'s email address is {v}."],
        ["What is {n}'s email?", "What's {n}'s email address?"],
    ),
    _rel(
        "handle",
        lambda rng, person: _handle(rng),
        ["My username is {v}.", "My gamer tag is {v}.", "I go by {v} online."],
        ["What's my username?", "What is my gamer tag?", "What do I go by online?"],
        ["{n}'s username is {v}.", "{n} goes by {v} online."],
        ["What is {n}'s username?", "What does {n} go by online?"],
    ),
    _rel(
        "booking",
        lambda rng, person: _code(rng),
        ["My booking reference is {v}.", "The confirmation code for my trip is {v}."],
        ["What's my booking reference?", "What is my confirmation code?"],
        ["{n}'s booking reference is {v}.", "The confirmation code for {n}'s trip is {v}."],
        ["What is {n}'s booking reference?", "What's {n}'s confirmation code?"],
    ),
    _rel(
        "book",
        lambda rng, person: _title(rng),
        ["I'm reading {v}.", "I'm halfway through {v}."],
        ["What book am I reading?", "What am I reading at the moment?"],
        ["{n} is reading {v}.", "{n} is halfway through {v}."],
        ["What book is {n} reading?", "What is {n} reading at the moment?"],
    ),
    _rel(
        "project",
        lambda rng, person: _title(rng).removeprefix("The "),
        ["My project is called {v}.", "I'm leading a project called {v}."],
        ["What is my project called?", "What's the name of my project?"],
        ["{n}'s project is called {v}.", "{n} leads a project called {v}."],
        ["What is {n}'s project called?", "What project does {n} lead?"],
    ),
    _rel(
        "study",
        _pool(SUBJECTS),
        ["I'm doing a PhD in {v}.", "I study {v} at university.", "My degree is in {v}."],
        ["What am I studying?", "What is my PhD in?", "What's my degree in?"],
        ["{n} is doing a PhD in {v}.", "{n} studies {v}."],
        ["What is {n} studying?", "What is {n}'s PhD in?"],
    ),
    _rel(
        "colour",
        _pool(COLOURS),
        ["My favourite colour is {v}.", "I like {v} best of all colours."],
        ["What's my favourite colour?", "Which colour do I like best?"],
        ["{n}'s favourite colour is {v}."],
        ["What is {n}'s favourite colour?", "Which colour does {n} like best?"],
    ),
    _rel(
        "car",
        _pool(CARS),
        ["I drive {v}.", "My car is {v}."],
        ["What car do I drive?", "What is my car?"],
        ["{n} drives {v}.", "{n}'s car is {v}."],
        ["What car does {n} drive?", "What does {n} drive?"],
    ),
    _rel(
        "hobby",
        _pool(HOBBIES),
        ["My hobby is {v}.", "I spend my weekends on {v}."],
        ["What's my hobby?", "What do I do for fun?"],
        ["{n}'s hobby is {v}.", "{n} spends weekends on {v}."],
        ["What is {n}'s hobby?", "What does {n} do for fun?"],
    ),
    _rel(
        "street",
        _pool(STREETS),
        ["I live on {v}.", "My flat is on {v}."],
        ["What street do I live on?", "Which street is my flat on?"],
        ["{n} lives on {v}.", "{n}'s flat is on {v}."],
        ["What street does {n} live on?", "Which street is {n}'s flat on?"],
    ),
    _rel(
        "holiday",
        _pool(COUNTRIES),
        [
            "I'm going to {v} on holiday.",
            "My next trip is to {v}.",
            "We're travelling to {v} in the summer.",
        ],
        ["Where am I going on holiday?", "Where is my next trip?", "Where am I travelling to?"],
        ["{n} is going to {v} on holiday.", "{n}'s next trip is to {v}."],
        ["Where is {n} going on holiday?", "Where is {n}'s next trip?"],
    ),
    _who(
        "manager", "Who do I report to?", "Who's my boss?", asks_third=("Who does {n} report to?",)
    ),
    _who("partner", "Who am I with?", asks_third=("Who is {n} with?",)),
    _who("coach", "Who trains me?", "Who coaches me?", asks_third=("Who coaches {n}?",)),
    _who(
        "landlord",
        "Who do I rent from?",
        "Who do I pay rent to?",
        asks_third=("Who does {n} rent from?",),
    ),
    _who("best friend", "Who's my closest friend?", asks_third=("Who is {n}'s closest friend?",)),
    _who("sister", "What's my sister called?", asks_third=("What is {n}'s sister called?",)),
    _who("brother", "What's my brother called?", asks_third=("What is {n}'s brother called?",)),
    _who("son", "What's my son called?", asks_third=("What is {n}'s son called?",)),
    _who("daughter", "What's my daughter called?", asks_third=("What is {n}'s daughter called?",)),
    _who("doctor", "Who is my GP?", asks_third=("Who is {n}'s GP?",)),
    _who("tutor", "Who teaches me?", "Who tutors me?", asks_third=("Who tutors {n}?",)),
    _who("flatmate", "Who do I live with?", asks_third=("Who does {n} live with?",)),
)

#: how a fact is said: by the user, about someone, or as someone's turn in a conversation
PERSONS = ("first", "third", "turn")


@dataclass(frozen=True)
class ProfileFact:
    """A stated fact, the questions that ask for it, and its answer (a span of ``text``)."""

    text: str
    questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Profile:
    """One person's facts, all said the same way."""

    person: str
    facts: tuple[ProfileFact, ...]


def _fact(relation: Relation, rng: random.Random, person: str, mode: str) -> ProfileFact:
    value = relation.draw(rng, person)
    species = rng.choice(SPECIES)

    def fill(template: str) -> str:
        text = template.replace("{s}", species).replace("{n}", person).replace("{v}", value)
        return text[0].upper() + text[1:]

    if mode == "third":
        text = fill(rng.choice(relation.third))
        asked = relation.ask_third
    else:
        text = fill(rng.choice(relation.first))
        asked = relation.ask_first if mode == "first" else relation.ask_third
        if mode == "turn":
            text = f"{person}: {text}"
    return ProfileFact(text, tuple(dict.fromkeys(fill(q) for q in asked)), value)


def make_profiles(
    count: int,
    seed: int = 0,
    facts_per_profile: tuple[int, int] = (3, 8),
    persons: tuple[str, ...] = PERSONS,
) -> list[Profile]:
    """``count`` profiles of ``facts_per_profile`` facts on distinct relations (so a question
    has one answer in its profile), each said in one of ``persons`` (see `PERSONS`)."""
    unknown = set(persons) - set(PERSONS)
    if unknown:
        raise ValueError(f"unknown persons {sorted(unknown)}; choose from {PERSONS}")
    rng = random.Random(seed)
    lo, hi = facts_per_profile
    out = []
    for _ in range(count):
        person, mode = _name(rng), rng.choice(persons)
        relations = rng.sample(RELATIONS, rng.randint(lo, min(hi, len(RELATIONS))))
        out.append(Profile(person, tuple(_fact(r, rng, person, mode) for r in relations)))
    return out
