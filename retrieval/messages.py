"""Fixed texts the engine says itself, in the asker's language (English when we have no translation)."""

from __future__ import annotations

DISCLOSURE = {
    "en": "This answer was written by an AI assistant using only the help-centre articles cited below.",
    "ru": "Этот ответ составлен ИИ-ассистентом только на основе указанных ниже статей справочного центра.",
    "lv": "Šo atbildi sagatavoja MI asistents, izmantojot tikai zemāk norādītos palīdzības centra rakstus.",
    "zh": "此回答由 AI 助手生成，仅依据下方引用的帮助中心文章。",
}

ABSTAINED = {
    "en": "I could not find a reliable answer to this in our help centre, so I will not guess. "
    "A member of our support team can help with this question.",
    "ru": "Я не нашёл в справочном центре надёжного ответа на этот вопрос и не буду гадать. "
    "Сотрудник службы поддержки сможет помочь с этим вопросом.",
    "lv": "Palīdzības centrā neatradu uzticamu atbildi uz šo jautājumu, tāpēc neminēšu. "
    "Mūsu atbalsta komandas darbinieks varēs palīdzēt ar šo jautājumu.",
    "zh": "我在帮助中心没有找到可靠的答案，因此不会猜测。我们的支持团队成员可以帮助您解决这个问题。",
}


def localized(texts: dict[str, str], language: str) -> str:
    return texts.get(language, texts["en"])
