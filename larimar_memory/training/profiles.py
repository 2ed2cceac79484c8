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

__all__ = ["ALL_RELATIONS", "FAMILIES", "Profile", "ProfileFact", "RELATIONS", "made_up_word",
           "make_profiles"]


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


_ONSETS = _items("b|br|c|ch|d|dr|f|fl|g|gr|h|j|k|kl|l|m|n|p|pr|qu|r|s|sh|st|t|tr|v|w|z")
_VOWELS = _items("a|e|i|o|u|a|e|o|ai|ea|ou|y")
_CODAS = _items("|||n|r|l|s|x|nd|rk|tch|ck|m|lt")


def made_up_word(rng: random.Random) -> str:
    """A pronounceable word no pool holds ("Brelvanda", "Quistock"): names, brands and places
    that must be copied letter for letter, as users' own names are."""
    syllables = rng.choice([2, 2, 3])
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (word + rng.choice(_CODAS)).capitalize()


def _made_up_brand(rng: random.Random) -> str:
    return made_up_word(rng) + rng.choice(["", "", " Labs", " Energy", " Group", " & Co"])


def _made_up_place(rng: random.Random) -> str:
    return made_up_word(rng) + rng.choice(["", " Castle", " Hall", " Park", " House", " Arena"])


def _made_up_title(rng: random.Random) -> str:
    return f"The {rng.choice(TITLE_WORDS_A)} {made_up_word(rng)}"


def _model_name(rng: random.Random) -> str:
    """A product: brand and model code ("Veltra K-40", "Osmo X7")."""
    brand = rng.choice([made_up_word(rng), rng.choice(GEAR_BRANDS)])
    letters = rng.choice("AKMQRSTVXZ")
    return rng.choice([f"{brand} {letters}-{rng.randint(2, 90)}",
                       f"{brand} {letters}{rng.randint(1, 9)}",
                       f"{brand} {rng.choice(TITLE_WORDS_A)} {rng.randint(2, 14)}"])


GEAR_BRANDS = _items("Fujifilm|Canon|Nikon|Sony|Garmin|Shimano|Trek|Brompton|Lenovo|Dell|"
                     "Asus|Fairphone|Pixel|Bose|Sennheiser|Yamaha|Fender|Hoka|Brooks|Asics")
SERVICE_BRANDS = _items("Octopus|Bulb|Ovo|Vattenfall|Iberdrola|Enel|Virgin Media|Vodafone|"
                        "Orange|Telia|Lebara|Monzo|Revolut|N26|ING|Rabobank|Allianz|Aviva|"
                        "PureGym|Anytime Fitness")
ALLERGENS = _items("peanuts|shellfish|pollen|penicillin|sesame|dairy|gluten|cats|bee stings|"
                   "kiwi|eggs|tree nuts")
DIETS = _items("vegetarian|vegan|pescatarian|gluten-free|halal|kosher|on a low-carb diet")
EVENTS = _items("wedding|book launch|job interview|conference talk|piano recital|graduation|"
                "housewarming party|exam|surgery|product demo|charity run|art exhibition")
GEAR = _items("camera|lens|laptop|phone|road bike|running shoes|headphones|guitar|smartwatch|"
              "tablet|amplifier|e-reader")
SERVICES = (("energy supplier", "electricity"), ("broadband provider", "internet"),
            ("phone network", "mobile plan"), ("bank", "current account"),
            ("insurer", "home insurance"), ("gym", "gym membership"),
            ("water company", "water"), ("car insurer", "car insurance"))


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
    #: a value no pool holds (a made-up name), drawn instead of ``draw``'s with the profiles'
    #: ``made_up_share``: the answer can then only be copied from memory, not recalled from the
    #: pools the decoder has seen
    made_up: Callable[[random.Random], str] | None = None
    #: what fills ``{x}``: a second slot of the same fact that is not the answer ("My wedding is
    #: at {x} on {v}." asked "When…"), so the answer is one span among several; the value of
    #: relation ``extra_key`` when the profile holds that one too (the same wedding's venue)
    extra: Callable[[random.Random], str] | None = None
    extra_key: str | None = None


def _pool(values: list[str]) -> Callable[[random.Random, str], str]:
    return lambda rng, person: rng.choice(values)


def _rel(
    key: str,
    draw: Callable[[random.Random, str], str],
    first: list[str],
    ask_first: list[str],
    third: list[str],
    ask_third: list[str],
    made_up: Callable[[random.Random], str] | None = None,
    extra: Callable[[random.Random], str] | None = None,
    extra_key: str | None = None,
) -> Relation:
    return Relation(key, draw, tuple(first), tuple(ask_first), tuple(third), tuple(ask_third),
                    made_up, extra, extra_key)


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
        made_up=made_up_word,
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
        made_up=made_up_word,
    ),
    _rel(
        "hometown",
        _pool(CITIES),
        ["I grew up in {v}.", "I was born in {v}.", "My hometown is {v}."],
        ["Where did I grow up?", "Where was I born?", "What is my hometown?"],
        ["{n} grew up in {v}.", "{n} was born in {v}."],
        ["Where did {n} grow up?", "Where was {n} born?", "What is {n}'s hometown?"],
        made_up=made_up_word,
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
        made_up=_made_up_brand,
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
        made_up=made_up_word,
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
        made_up=_made_up_title,
    ),
    _rel(
        "project",
        lambda rng, person: _title(rng).removeprefix("The "),
        ["My project is called {v}.", "I'm leading a project called {v}."],
        ["What is my project called?", "What's the name of my project?"],
        ["{n}'s project is called {v}.", "{n} leads a project called {v}."],
        ["What is {n}'s project called?", "What project does {n} lead?"],
        made_up=made_up_word,
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
        made_up=made_up_word,
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


def _venue(rng: random.Random) -> str:
    return _made_up_place(rng) if rng.random() < 0.5 else rng.choice(CITIES)


def _event(event: str) -> tuple[Relation, Relation]:
    """When and where an event is: two relations; the date's fact may name the place too."""
    key = event.replace(" ", "_")
    date = _rel(
        f"{key}_date", lambda rng, person: _date(rng),
        [f"My {event} is on {{v}}.", f"My {event} is at {{x}} on {{v}}.",
         f"I have my {event} on {{v}}."],
        [f"When is my {event}?", f"What date is my {event}?", f"Which day is my {event} on?"],
        [f"{{n}}'s {event} is on {{v}}.", f"{{n}}'s {event} is at {{x}} on {{v}}."],
        [f"When is {{n}}'s {event}?", f"What date is {{n}}'s {event}?"],
        extra=_venue, extra_key=f"{key}_place",
    )
    place = _rel(
        f"{key}_place", lambda rng, person: rng.choice(CITIES),
        [f"My {event} is at {{v}}.", f"The venue for my {event} is {{v}}.",
         f"My {event} will be held at {{v}}."],
        [f"Where is my {event}?", f"Where is my {event} taking place?",
         f"What's the venue for my {event}?"],
        [f"{{n}}'s {event} is at {{v}}.", f"The venue for {{n}}'s {event} is {{v}}."],
        [f"Where is {{n}}'s {event}?", f"Where is {{n}}'s {event} taking place?"],
        made_up=_made_up_place,
    )
    return date, place


def _gear(kind: str) -> Relation:
    return _rel(
        kind.replace(" ", "_"), lambda rng, person: _model_name(rng),
        [f"My {kind} is a {{v}}.", f"I use a {{v}} as my {kind}.",
         f"I just bought a {{v}} {kind}."],
        [f"Which {kind} do I use?", f"What {kind} do I have?", f"What's my {kind}?"],
        [f"{{n}}'s {kind} is a {{v}}.", f"{{n}} uses a {{v}} {kind}."],
        [f"Which {kind} does {{n}} use?", f"What {kind} does {{n}} have?"],
    )


def _service(role: str, thing: str) -> Relation:
    return _rel(
        role.replace(" ", "_"), _pool(SERVICE_BRANDS),
        [f"My {role} is {{v}}.", f"I get my {thing} from {{v}}.", f"I'm with {{v}} for {thing}."],
        [f"Who is my {role}?", f"Which company provides my {thing}?",
         f"Who do I get my {thing} from?"],
        [f"{{n}}'s {role} is {{v}}.", f"{{n}} gets {thing} from {{v}}."],
        [f"Who is {{n}}'s {role}?", f"Which company provides {{n}}'s {thing}?"],
        made_up=_made_up_brand,
    )


ALLERGY = _rel(
    "allergy", _pool(ALLERGENS),
    ["I'm allergic to {v}.", "I have an allergy to {v}.", "I react badly to {v}."],
    ["What am I allergic to?", "Which allergy do I have?", "Am I allergic to anything?"],
    ["{n} is allergic to {v}.", "{n} has an allergy to {v}."],
    ["What is {n} allergic to?", "Does {n} have any allergies?"],
)
DIET = _rel(
    "diet", _pool(DIETS),
    ["I'm {v}.", "I eat {v} these days.", "I've been {v} for years."],
    ["What diet do I follow?", "How do I eat?", "Do I have a special diet?"],
    ["{n} is {v}.", "{n} has been {v} for years."],
    ["What diet does {n} follow?", "Does {n} have a special diet?"],
)
_EVENTS = tuple(_event(e) for e in EVENTS)
_GEAR = tuple(_gear(kind) for kind in GEAR)
_SERVICES = tuple(_service(role, thing) for role, thing in SERVICES)

#: relations a person's other facts are easily confused with: the same event's date and place,
#: one kind of gear for another, one provider for another, an allergy for a diet, an employer for
#: a job. A profile drawn from a family reads the facts a question must tell apart.
_BY_KEY = {r.key: r for r in RELATIONS}
FAMILIES: tuple[tuple[Relation, ...], ...] = (
    *(tuple(r for pair in _EVENTS[i::3] for r in pair) for i in range(3)),  # 4 events each
    _GEAR,
    _SERVICES,
    (ALLERGY, DIET, _BY_KEY["food"], _BY_KEY["drink"]),
    tuple(_BY_KEY[k] for k in ("employer", "job", "manager", "project", "commute")),
    tuple(_BY_KEY[k] for k in ("flight", "holiday", "booking", "home", "hometown")),
    tuple(_BY_KEY[k] for k in ("alarm", "class_day", "appointment", "deadline", "birthday")),
    tuple(_BY_KEY[k] for k in ("partner", "sister", "brother", "son", "daughter", "pet", "kids")),
)
#: every relation a family-drawn profile may hold
ALL_RELATIONS: tuple[Relation, ...] = (
    *RELATIONS, *(r for pair in _EVENTS for r in pair), *_GEAR, *_SERVICES, ALLERGY, DIET)


#: how a fact is said: by the user, about someone, or as someone's turn in a conversation
PERSONS = ("first", "third", "turn")


@dataclass(frozen=True)
class ProfileFact:
    """A stated fact, the questions that ask for it, and its answer (a span of ``text``)."""

    text: str
    questions: tuple[str, ...]
    answer: str
    relation: str = ""  # the relation's key


@dataclass(frozen=True)
class Profile:
    """One person's facts, all said the same way."""

    person: str
    facts: tuple[ProfileFact, ...]


def _fact(relation: Relation, rng: random.Random, person: str, mode: str,
          made_up_share: float, known: dict[str, str]) -> ProfileFact:
    """One fact of ``relation``; ``known``: the values drawn for the profile so far, by relation
    key (updated), so a second slot names the same thing as its own fact."""
    value = relation.draw(rng, person)
    if relation.made_up is not None and made_up_share and rng.random() < made_up_share:
        value = relation.made_up(rng)
    known[relation.key] = value
    species = rng.choice(SPECIES)
    extra = ""
    if relation.extra is not None:
        extra = known.get(relation.extra_key or "") or relation.extra(rng)

    def fill(template: str) -> str:
        text = (template.replace("{s}", species).replace("{n}", person).replace("{x}", extra)
                .replace("{v}", value))
        return text[0].upper() + text[1:]

    if mode == "third":
        text = fill(rng.choice(relation.third))
        asked = relation.ask_third
    else:
        text = fill(rng.choice(relation.first))
        asked = relation.ask_first if mode == "first" else relation.ask_third
        if mode == "turn":
            text = f"{person}: {text}"
    return ProfileFact(text, tuple(dict.fromkeys(fill(q) for q in asked)), value, relation.key)


def make_profiles(
    count: int,
    seed: int = 0,
    facts_per_profile: tuple[int, int] = (3, 8),
    persons: tuple[str, ...] = PERSONS,
    family_share: float = 0.0,
    made_up_share: float = 0.0,
) -> list[Profile]:
    """``count`` profiles of ``facts_per_profile`` facts on distinct relations (so a question
    has one answer in its profile), each said in one of ``persons`` (see `PERSONS`).

    With ``family_share``, that share of the profiles holds the relations of one of `FAMILIES`
    (facts easily mistaken for each other) and the rest draw from `ALL_RELATIONS`; with
    ``made_up_share``, that share of the values that can be made up are (`made_up_word`).
    Both 0 draws exactly the profiles of earlier versions."""
    unknown = set(persons) - set(PERSONS)
    if unknown:
        raise ValueError(f"unknown persons {sorted(unknown)}; choose from {PERSONS}")
    rng = random.Random(seed)
    lo, hi = facts_per_profile
    pool = ALL_RELATIONS if family_share else RELATIONS
    out = []
    for _ in range(count):
        person, mode = _name(rng), rng.choice(persons)
        size = rng.randint(lo, min(hi, len(pool)))
        if family_share and rng.random() < family_share:
            family = rng.choice(FAMILIES)
            relations = rng.sample(family, min(len(family), size))
            rest = [r for r in pool if r not in relations]
            relations += rng.sample(rest, size - len(relations))
            rng.shuffle(relations)
        else:
            relations = rng.sample(pool, size)
        # a fact that names a second slot comes after the fact that holds it
        relations = sorted(relations, key=lambda r: r.extra is not None)
        known: dict[str, str] = {}
        out.append(Profile(person, tuple(_fact(r, rng, person, mode, made_up_share, known)
                                         for r in relations)))
    return out
