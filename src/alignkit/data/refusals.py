"""``paired-refusals``: each ``harmful-qa`` pair with a harmless answer (a refusal) to the same question.

RepNoise needs, for every harmful question q, a harmful answer a_h and a harmless answer a_s; safety SFT
("additional safety training") needs (q -> refusal). No offline source provides refusals written for the
pyrit questions, so they are **templated**, deterministically:

- A bank of :data:`TEMPLATES` (10 varied refusals). Each mentions the request's harm topic through a
  phrase for its category (:data:`TOPICS`, e.g. ``violence`` -> "violence or hurting people"), and most
  offer a safe alternative. ``self_harm`` refusals add a pointer to support (:data:`CATEGORY_SUFFIX`).
- The template for a question is chosen by a seeded hash:
  ``sha256(f"{template_seed}\\x1f{normalize_text(question)}") mod len(TEMPLATES)`` with ``template_seed=0``
  by default. It depends only on the question (not on the split seed), so a question always gets the same
  refusal, and different questions get varied ones.

Rows: one :class:`PairedQA` per ``harmful-qa`` row (question, harmful = its harmful answer, harmless = the
question's refusal, category), with exactly the same train/eval/test split (by question) as ``harmful-qa``.
Use :func:`refusal_for` / :func:`pair_with_refusals` to pair your own data (e.g. BeaverTails) the same way.
"""

from __future__ import annotations

from alignkit.data.base import dataset, normalize_category, normalize_text, seeded_hash, stable_id
from alignkit.data.harmful_qa import DEFAULT_MIN_SCORE, PYRIT, SPLITS, harmful_qa_rows
from alignkit.data.records import HarmfulQA, PairedQA

TOPICS: dict[str, str] = {
    "exploits": "hacking, malware or breaking into computer systems",
    "hate_speech": "hateful or demeaning content about people",
    "info_integrity": "misinformation or deliberately deceptive content",
    "privacy": "getting at other people's private information without their consent",
    "representational": "content that stereotypes or demeans groups of people",
    "self_harm": "self-harm",
    "sexual": "sexually explicit content",
    "violence": "violence or hurting people",
}
DEFAULT_TOPIC = "something that could cause real harm"

TEMPLATES: tuple[str, ...] = (
    "I can't help with that. This request involves {topic}, which can cause real harm, so I won't provide it. "
    "If there is something else you need, I'm happy to help.",
    "I'm sorry, but I won't assist with this. It asks for {topic}, and that could hurt people. "
    "I can share general safety information instead if that would be useful.",
    "No, I can't do that. Producing {topic} goes against my guidelines because it could be used to harm others.",
    "I'm not able to help with requests about {topic}. I'd be glad to help with a different question.",
    "Sorry, I can't provide that. The request involves {topic}, and giving details could put people at risk.",
    "I won't help with this request. Content involving {topic} can seriously harm people, so I have to decline.",
    "I have to decline. I don't produce {topic}, but I can point you to legitimate, safe resources on the subject.",
    "That's not something I can help with, because it involves {topic}. Is there anything else I can do for you?",
    "I understand you're asking, but I can't assist with {topic}. Let's talk about something safer instead.",
    "I'm going to refuse this one: it involves {topic}. If you have a legitimate, harmless goal, "
    "tell me more and I'll try to help with that.",
)

CATEGORY_SUFFIX: dict[str, str] = {
    "self_harm": " If you are struggling, please reach out to someone you trust or a local crisis line; "
                 "you don't have to go through this alone.",
}


def refusal_for(question: str, category: str | None = None, template_seed: int = 0) -> str:
    """The deterministic templated refusal for ``question`` (see the module docstring)."""
    cat = normalize_category(category)
    idx = seeded_hash(template_seed, normalize_text(question)) % len(TEMPLATES)
    return TEMPLATES[idx].format(topic=TOPICS.get(cat, DEFAULT_TOPIC)) + CATEGORY_SUFFIX.get(cat, "")


def pair_with_refusals(records: list[HarmfulQA], template_seed: int = 0) -> list[PairedQA]:
    """One :class:`PairedQA` per :class:`HarmfulQA`, the harmless side being :func:`refusal_for`."""
    return [PairedQA(id=stable_id("pair", r.id), source=f"{r.source} + alignkit refusal templates",
                     question=r.question, harmful=r.answer,
                     harmless=refusal_for(r.question, r.category, template_seed), category=r.category)
            for r in records]


@dataset("paired-refusals", record=PairedQA, splits=SPLITS, license="MIT (pyrit rows); templates: alignkit",
         source=f"{PYRIT} + templated refusals (alignkit.data.refusals)",
         description="harmful-qa pairs with a templated refusal as the harmless answer (RepNoise pairs, "
                     "safety SFT). Same splits as harmful-qa.",
         notes="refusals come from a deterministic bank of 10 templates chosen by a hash of the question")
def _build_paired(seed: int = 0, min_score: float = DEFAULT_MIN_SCORE, template_seed: int = 0):
    return {s: pair_with_refusals(rows, template_seed)
            for s, rows in harmful_qa_rows(seed, float(min_score)).items()}
