"""The offline generator: deterministic, persona-aware template copy that works with no API key.

It is what a marketer gets when no key is set or the LLM fails, so it must read like a usable first draft:
hook -> benefit -> call to action, shaped per platform, worded per tone and funnel stage, aimed at the
segment's places, tier and tenure, and obedient to the brand profile. The same inputs always give the
same draft; variants rotate through different templates.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from portal.content.brand import BrandProfile, as_hashtag
from portal.content.pii import redact_pii
from portal.content.platforms import PLATFORM_RULES
from schemas import CampaignInputs, ContentPreferences

HOOKS = {
    "Professional": (
        "{Product}, thoughtfully chosen for {who}{place_in}.",
        "For {who}{place_in}, the details matter.",
        "A better way to enjoy {product}.",
        "What {who} value most, delivered well.",
        "Your membership, working harder for you.",
    ),
    "Casual": (
        "Hey {who}{place_in}, this one's for you.",
        "Been meaning to treat yourself? Here's your sign.",
        "Quick one: {product} just got easier to love.",
        "Weekend plans? We've got you covered.",
        "Okay, {product} is here and we're excited.",
    ),
    "Playful": (
        "Plot twist: {product} that actually gets you.",
        "Warning: may cause sudden urges to treat yourself.",
        "Knock knock. Who's there? {Product}, made for {who}.",
        "Your new favourite habit is calling.",
        "Not to brag, but {product} just levelled up.",
    ),
    "Empathetic": (
        "We know your days are full{place_comma}.",
        "Life gets busy. {Product} should make it easier, not harder.",
        "Thank you for making us part of your week.",
        "Taking care of yourself shouldn't feel like a chore.",
        "We listened to {who}, and here's what we changed.",
    ),
    "Fun": (
        "Big news for {who}{place_in}!",
        "It's here, it's fresh, and it's all yours!",
        "Ready, set, treat yourself!",
        "Drumroll, please: {product}!",
        "Your week just got a lot more exciting!",
    ),
    "Inspirational": (
        "Every great week starts with one good choice.",
        "Make this the season you do more of what you love.",
        "Small moments, done well, change everything.",
        "{Who}{place_in}: this is your moment.",
        "Here's to making time for what matters to you.",
    ),
    "Urgent": (
        "Don't wait, {who}{place_in}!",
        "This won't be around for long.",
        "Now is the moment to make it yours.",
        "Act now: {product} is waiting.",
        "Last call for {who}{place_in}!",
    ),
}
BENEFITS = {
    "Awareness": (
        "Discover {product}, designed around the way you live{place_in}.",
        "Say hello to {product}: less fuss, more of what you love.",
        "From everyday essentials to little luxuries, {product} fits right into your week.",
        "It's {product} the way it should be: simple, reliable and close to home.",
        "See why {product} is becoming a favourite{place_in}.",
    ),
    "Consideration": (
        "Take a closer look: {product} gives you more value every time.",
        "Thoughtful quality, fair value and service that remembers you.",
        "Everything you need to decide is right here, with no pressure.",
        "{Product}, built to last and backed by people who care.",
        "Compare for yourself; the difference is in the details.",
    ),
    "Conversion": (
        "Getting started is quick and easy.",
        "Your next favourite is just a few taps away.",
        "There's no better moment to make it yours.",
        "Make it yours today and enjoy it all week.",
        "Everything is ready for you; all that's missing is you.",
    ),
    "Retention": (
        "Thank you for being part of {brand_family}{tenure}.",
        "You've made us part of your routine{tenure}, so we're returning the favour.",
        "Your membership means more with every visit.",
        "We've saved something special for {who} like you.",
        "Here's to many more good days together.",
    ),
    "Advocacy": (
        "Love it? Share it with someone who would love it too.",
        "Bring a friend along; good things are better shared.",
        "Tell us your favourite and inspire someone new.",
        "Your recommendation means the world to us.",
        "Know someone who needs this in their week? Pass it on.",
    ),
}
OFFER_LINES = ("{Offer}.", "Plus: {offer}.", "Member offer: {offer}.", "Don't miss it: {offer}.", "{Offer}.")
INTEREST_LINES = ("Expect {interest} and more.", "Look out for {interest}.", "{Interest}, saved just for you.",
                  "Think {interest}.", "And yes, {interest} too.")
POINTS = ("Built around what matters to {who}", "Consistent quality you can rely on",
          "Service that respects your time", "Clear value with no surprises", "Easy to enjoy{place_near}")
COMMENT_PROMPTS = ("Tell us in the comments: what's your go-to?", "Who would you share this with?",
                   "What should we bring you next?", "Drop a 🙌 if you're in!", "Which one is your favourite?")
EMOJI = {"Professional": ("", ""), "Casual": ("😊", "👉"), "Playful": ("😉", "👉"), "Empathetic": ("💛", "👉"),
         "Fun": ("🎉", "🚀"), "Inspirational": ("✨", "👉"), "Urgent": ("⏰", "👉")}
PRODUCT_BY_INDUSTRY = {
    "retail": "our latest range", "food": "our menu", "beverage": "our menu", "beauty": "our treatments",
    "wellness": "our treatments", "fashion": "our new-season styles", "travel": "our getaways",
    "hospitality": "our stays", "financial": "our plans", "education": "our courses",
    "technology": "our tools", "healthcare": "our care services", "real estate": "our listings",
}
HASHTAGS_BY_INDUSTRY = {
    "retail": ("#ShopLocal", "#NewArrivals", "#RetailTherapy"), "food": ("#SGFood", "#Foodie", "#SGEats"),
    "beverage": ("#SGFood", "#CoffeeTime", "#SGEats"), "beauty": ("#SelfCare", "#BeautySG", "#GlowUp"),
    "wellness": ("#Wellness", "#SelfCare", "#HealthyLiving"), "fashion": ("#OOTD", "#StyleSG", "#NewSeason"),
    "travel": ("#Travel", "#Wanderlust", "#Getaway"), "hospitality": ("#Staycation", "#Travel", "#Getaway"),
    "financial": ("#MoneyMatters", "#FinancialWellness", "#SmartMoney"),
    "education": ("#LifelongLearning", "#Upskill", "#Education"), "technology": ("#Tech", "#Innovation"),
    "healthcare": ("#Health", "#Wellbeing", "#CareThatCares"), "real estate": ("#RealEstateSG", "#HomeSweetHome"),
}
CTA_BY_OBJECTIVE = (
    (("install", "app", "download"), ("Download the app today", "Get the app now", "Install the app and explore")),
    (("lead", "sign", "register", "enquir", "inquir"), ("Sign up today", "Register your interest",
                                                         "Get in touch to learn more")),
    (("traffic", "website", "visit", "browse"), ("Visit our website", "Explore more online",
                                                 "Tap the link to learn more")),
    (("event", "workshop", "webinar", "party"), ("Save your spot", "Reserve your place today", "RSVP now")),
    (("win back", "lapsed", "retain", "loyal", "return"), ("Come back and see what's new",
                                                           "Visit us again this week", "Redeem your member perks")),
    (("launch", "new product"), ("Be among the first to try it", "Discover it now", "Try it first")),
    (("awareness", "brand", "follow"), ("Follow us for more", "Discover more", "Come say hello")),
)
CTA_BY_INDUSTRY = {
    "food": ("Order now", "Book a table", "Come hungry"), "beverage": ("Order now", "Drop by today", "Sip on us"),
    "travel": ("Book now", "Plan your escape", "Start planning"), "hospitality": ("Book your stay", "Book now",
                                                                                  "Plan your staycation"),
    "beauty": ("Book your appointment", "Treat yourself today", "Book now"),
    "education": ("Enrol today", "Join the next intake", "Start learning"),
    "financial": ("Get started", "Speak to our team", "Find your plan"),
    "healthcare": ("Book a consultation", "Book your check-up", "Talk to us"),
    "real estate": ("Book a viewing", "Arrange a viewing", "Explore listings"),
}
DEFAULT_CTAS = ("Shop now", "Order today", "Grab yours today")
HASHTAG_COUNT = {"X": 2, "Instagram": 5, "TikTok": 4, "LinkedIn": 3, "Facebook": 2, "Email": 0, "Website": 0}
IMAGE_STYLE = {
    "Professional": "clean, editorial photograph with soft natural light",
    "Casual": "candid lifestyle photograph, warm and relaxed",
    "Playful": "colourful, playful flat-lay with bold shapes",
    "Empathetic": "warm, gentle photograph with soft tones",
    "Fun": "vibrant, high-energy photograph with bright colours",
    "Inspirational": "aspirational golden-hour photograph",
    "Urgent": "bold, high-contrast product shot",
}
IMAGE_FRAME = {"X": "wide landscape", "LinkedIn": "wide landscape", "Facebook": "wide landscape",
               "Website": "wide banner", "Email": "wide banner", "Instagram": "square", "TikTok": "tall vertical"}


@dataclass(frozen=True)
class _Audience:
    """What the templates say about the segment, taken from aggregate traits only."""

    who: str
    place: str | None
    tenure: str
    interests: tuple[str, ...]


#: Facts the list's own profile of a segment overrides: what is true of this audience, not of the archetype.
LIST_FACTS = ("tier_mix", "top_locations", "median_tenure_months")


def _audience(brief: dict[str, Any]) -> _Audience:
    this_list = brief.get("list_profile") or {}
    brief = {**brief, **{k: this_list[k] for k in LIST_FACTS if k in this_list}}
    tiers: dict[str, float] = brief.get("tier_mix") or {}
    tier = max(tiers, key=lambda name: tiers[name]) if tiers else None
    tier = tier if tier and tiers[tier] >= 0.4 else None
    months = brief.get("median_tenure_months")
    loyal = isinstance(months, int) and months >= 36
    if tier:
        who = f"our {tier} members"
    elif loyal:
        who = "our long-time members"
    elif isinstance(months, int) and months <= 12:
        who = "our newest members"
    else:
        who = "our members" if brief.get("size") else "you"
    place = None
    for key, threshold in (("top_locations", 0.15), ("top_regions", 0.5)):
        ranked = brief.get(key) or []
        if ranked and (ranked[0].get("share") or 0) >= threshold:
            place = ranked[0]["value"]
            break
    tenure = f" for {months // 12} years and counting" if loyal and isinstance(months, int) else ""
    return _Audience(who, place, tenure, tuple(brief.get("content_angles") or ()))


def _industry_key(industry: str, table: dict[str, Any]) -> str | None:
    lowered = industry.lower()
    return next((key for key in table if key in lowered), None)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip()
    return text if not text or text[-1] in ".!?…" else text + "."


class _Picker:
    """Deterministic choice per slot: the same inputs pick the same template; variants rotate."""

    def __init__(self, key: str, index: int, brand: BrandProfile | None) -> None:
        self.key, self.index, self.brand = key, index, brand

    def several(self, slot: str, options: tuple[str, ...], count: int, **values: str) -> list[str]:
        """`count` different options in rotation order, skipping any that use the brand's avoided words."""
        start = int(hashlib.sha256(f"{self.key}|{slot}".encode()).hexdigest()[:8], 16) + self.index
        rendered = [options[(start + step) % len(options)].format(**values) for step in range(len(options))]
        clean = [r for r in rendered if not (self.brand and self.brand.avoided_words_in(r))]
        return (clean + [r for r in rendered if r not in clean])[:count]

    def __call__(self, slot: str, options: tuple[str, ...], **values: str) -> str:
        return self.several(slot, options, 1, **values)[0]


def _cta(campaign: CampaignInputs, brand: BrandProfile | None, pick: _Picker) -> str:
    if brand and brand.default_cta:
        return brand.default_cta
    objective = campaign.objective.lower()
    for words, ctas in CTA_BY_OBJECTIVE:
        if any(w in objective for w in words):
            return pick("cta", ctas)
    industry = _industry_key(campaign.industry, CTA_BY_INDUSTRY)
    return pick("cta", CTA_BY_INDUSTRY[industry] if industry else DEFAULT_CTAS)


def _product(campaign: CampaignInputs) -> str:
    if campaign.product:
        product = " ".join(campaign.product.split()).rstrip(".")
        if re.match(r"(?i)(the|our|a|an|your|my)\b", product) or (
                campaign.brand_name and product.lower().startswith(campaign.brand_name.lower())):
            return product
        return f"our {product}"
    industry = _industry_key(campaign.industry, PRODUCT_BY_INDUSTRY)
    return PRODUCT_BY_INDUSTRY[industry] if industry else "our latest range"


def _hashtags(campaign: CampaignInputs, audience: _Audience, brand_name: str | None, platform: str,
              pick_index: int) -> list[str]:
    count = HASHTAG_COUNT[platform]
    if not count:
        return []
    industry = _industry_key(campaign.industry, HASHTAGS_BY_INDUSTRY)
    pool = list(HASHTAGS_BY_INDUSTRY[industry] if industry else ("#ShopLocal", "#NewArrivals"))
    pool = pool[pick_index % len(pool):] + pool[:pick_index % len(pool)]
    tags = [as_hashtag(brand_name)] if brand_name else []
    if audience.place:
        tags.append(as_hashtag(audience.place))
    if campaign.product:
        tags.append(as_hashtag(" ".join(campaign.product.split()[:3])))
    tags += pool
    tags.append("#Singapore" if audience.place else "#MemberPerks")
    unique: dict[str, str] = {}  # lower-case -> first spelling
    for tag in tags:
        if tag and len(tag) <= 30:
            unique.setdefault(tag.lower(), tag)
    return list(unique.values())[:count]


def _strip_avoided(text: str, brand: BrandProfile | None) -> str:
    for word in brand.avoided_words_in(text) if brand else []:
        text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)\s?", "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def write_variant(brief: dict[str, Any], campaign: CampaignInputs, prefs: ContentPreferences,
                  brand: BrandProfile | None = None, index: int = 0) -> dict[str, Any]:
    """One draft (angle, headline, body, cta, hashtags, image_prompt) for variant `index`."""
    campaign = campaign.model_copy(update={k: redact_pii(v) for k, v in campaign.model_dump().items()
                                           if isinstance(v, str)})
    platform, tone = prefs.platform, prefs.tone
    key = "|".join([brief.get("name", ""), campaign.objective, campaign.industry, platform, tone,
                    campaign.product or "", campaign.offer or ""])
    pick = _Picker(key, index, brand)
    audience = _audience(brief)
    brand_name = campaign.brand_name or (brand.name if brand else None)
    product = _product(campaign)
    values = {
        "product": product, "Product": _cap(product), "who": audience.who.removeprefix("our "),
        "Who": _cap(audience.who.removeprefix("our ")), "place_in": f" in {audience.place}" if audience.place else "",
        "place_comma": f", {audience.place}" if audience.place else "",
        "place_near": f" near {audience.place}" if audience.place else "", "brand": brand_name or "us",
        "brand_family": f"the {brand_name} family" if brand_name else "our family",
        "tenure": audience.tenure,
    }
    hook = pick("hook", HOOKS[tone], **values)
    benefit = pick("benefit", BENEFITS[campaign.funnel_stage], **values)
    offer = pick("offer", OFFER_LINES, offer=campaign.offer.rstrip("."), Offer=_cap(campaign.offer.rstrip(
        "."))) if campaign.offer else ""
    interest = (pick("interest", INTEREST_LINES, interest=audience.interests[index % len(audience.interests)],
                     Interest=_cap(audience.interests[index % len(audience.interests)]))
                if audience.interests else "")
    cta = _cta(campaign, brand, pick)
    lead, arrow = EMOJI[tone]
    points = pick.several("points", POINTS, 3, **values)
    tagline = brand.tagline if brand and brand.tagline else ""

    if platform == "X":
        body = " ".join(filter(None, [hook, benefit, offer, _sentence(cta)]))
    elif platform == "Instagram":
        lines = [f"{lead} {hook}".strip(), " ".join(filter(None, [benefit, interest])), offer,
                 f"{arrow} {_sentence(cta)}".strip()]
        body = "\n\n".join(filter(None, lines))
    elif platform == "TikTok":
        body = "\n".join(filter(None, [f"{hook} {lead}".strip(), benefit, offer, _sentence(cta)]))
    elif platform == "Facebook":
        body = "\n\n".join(filter(None, [f"{hook} {benefit}", " ".join(filter(None, [offer, interest])),
                                         pick("comment", COMMENT_PROMPTS), _sentence(cta)]))
    elif platform == "LinkedIn":
        bullets = "\n".join(f"• {p}" for p in points)
        body = "\n\n".join(filter(None, [hook, " ".join(filter(None, [benefit, interest])),
                                         f"What you can expect:\n{bullets}", offer, _sentence(cta), tagline]))
    elif platform == "Email":
        sign_off = f"Warm regards,\nThe {brand_name} team" if brand_name else "Warm regards,\nThe team"
        body = "\n\n".join(filter(None, ["Hi there,", f"{hook} {benefit}", " ".join(filter(None, [interest, offer])),
                                         f"{_sentence(cta)[:-1]} →", sign_off, tagline]))
    else:
        bullets = "\n".join(f"• {p}" for p in points)
        body = "\n\n".join(filter(None, [" ".join(filter(None, [benefit, interest])), bullets, offer,
                                         _sentence(cta), tagline]))

    headline = hook
    if platform == "Email" and offer and campaign.offer and len(campaign.offer) <= 45:
        headline = pick("subject", (f"{_cap(campaign.offer.rstrip('.'))} for {values['who']}", hook))
    elif platform == "Website":
        headline = pick("heading", (f"{values['Product']}{values['place_in']}", hook))
    limit = PLATFORM_RULES[platform].subject_max or 90
    if len(headline) > limit:
        shorter = (hook, f"{values['Product']} for {values['who']}", f"Something new for {values['who']}")
        headline = next((h for h in shorter if len(h) <= limit), "Something new for you")
    image_prompt = None
    if prefs.prefer_output in ("image", "both"):
        setting = f"a bright neighbourhood setting in {audience.place}, Singapore" if audience.place else \
            "a bright, modern everyday setting"
        image_prompt = (f"{_cap(IMAGE_STYLE[tone])} of {product.removeprefix('our ')} in {setting}; "
                        f"{IMAGE_FRAME[platform]} composition with room for a caption; no text, no logos, "
                        "no identifiable people.")
    draft = {
        "angle": f"{campaign.funnel_stage.lower()} · template {index + 1}",
        "headline": _strip_avoided(headline, brand), "body": _strip_avoided(body, brand),
        "cta": _strip_avoided(cta, brand) or DEFAULT_CTAS[0],
        "hashtags": _hashtags(campaign, audience, brand_name, platform, index),
        "image_prompt": _strip_avoided(image_prompt, brand) if image_prompt else None,
    }
    return draft
