"""Vietnamese text helpers: one tone-mark style, and a fast vi/en/other language guess.

    normalize_tone_marks("Hoà bình, khoẻ mạnh, thuỷ thủ", "new") == "Hòa bình, khỏe mạnh, thủy thủ"
    normalize_tone_marks("Hòa bình, khỏe mạnh, thủy thủ", "old") == "Hoà bình, khoẻ mạnh, thuỷ thủ"
    detect_language("toi khong biet ban co the giup toi duoc khong") == "vi"

Tone-mark styles. The two conventions differ only in open syllables whose vowel is the glide
pair oa, oe or uy with nothing after it: "old" puts the mark on the second vowel (hoà, khoẻ, thuỷ),
"new" on the first (hòa, khỏe, thủy); these names follow luyen's config (`data.clean.vietnamese_tone`),
and some style guides use them the other way round. Everything else is the same in both styles and
is never touched: a final consonant or vowel follows (hoàn, ngoài, xoáy, khuỷu, thuyền), the u
belongs to "qu" (quý, quả), the i to "gi" (già), or the pair is not a glide pair (của, mùa).
Text must be NFC (luyen.data.clean normalises first); case is kept (HOÀ -> HÒA).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Literal

_TONES = "\u0300\u0301\u0309\u0303\u0323"  # huyền, sắc, hỏi, ngã, nặng
_GLIDE_PAIRS = (("o", "a"), ("o", "e"), ("u", "y"))


def _tone_tables() -> tuple[dict[str, str], dict[str, str]]:
    """Map each marked pair to its other style, in every case combination: {"oà": "òa", "OÀ": "ÒA", ...}."""
    to_new = {}
    for glide, vowel in _GLIDE_PAIRS:
        for g in (glide, glide.upper()):
            for v in (vowel, vowel.upper()):
                for tone in _TONES:
                    old = g + unicodedata.normalize("NFC", v + tone)
                    to_new[old] = unicodedata.normalize("NFC", g + tone) + v
    return to_new, {new: old for old, new in to_new.items()}


_TO_NEW, _TO_OLD = _tone_tables()
# Candidates: a glide pair carrying a mark and ending the word. Each pattern starts with a plain
# character class, so `re` skips to candidates fast; the lookbehind pairs the glide with its vowel.
_OLD_PAIR = re.compile(r"[oOuU](?:(?<=[oO])[àáảãạèéẻẽẹÀÁẢÃẠÈÉẺẼẸ]|(?<=[uU])[ỳýỷỹỵỲÝỶỸỴ])(?![^\W\d_])")
_NEW_PAIR = re.compile(r"[òóỏõọÒÓỎÕỌùúủũụÙÚỦŨỤ](?:(?<=[òóỏõọÒÓỎÕỌ])[aAeE]|(?<=[ùúủũụÙÚỦŨỤ])[yY])(?![^\W\d_])")
# What may stand before the pair in the same word: only onset consonants, so "qu" and "gi" are out.
_ONSET = re.compile(r"(?<![^\W\d_])[bcdđghklmnprstvx]{0,3}$", re.IGNORECASE)


def normalize_tone_marks(text: str, style: Literal["new", "old"]) -> str:
    """Rewrite every oa/oe/uy open syllable in the given style; see the module docstring.

        normalize_tone_marks("Uỷ ban, HOÀ, quý, hoàn", "new") == "Ủy ban, HÒA, quý, hoàn"
    """
    if style == "new":
        pattern, table = _OLD_PAIR, _TO_NEW
    elif style == "old":
        pattern, table = _NEW_PAIR, _TO_OLD
    else:
        raise ValueError(f"style must be 'new' or 'old', got {style!r}")

    def swap(m: re.Match) -> str:
        start = m.start()
        if _ONSET.search(m.string, max(0, start - 4), start) is None:
            return m.group()
        return table[m.group()]

    return pattern.sub(swap, text)


# Letters only Vietnamese uses among Latin-script languages: đ ă ơ ư ĩ ũ and the whole
# U+1EA0-U+1EF9 block (ạ ả ấ ... ỹ). Accented letters it shares with French and others count half.
_VI_ONLY = re.compile("[đăơưĩũĐĂƠƯĨŨ\u1ea0-\u1ef9]")
_VI_SHARED = re.compile("[àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ]")
# Eight letters with Vietnamese marks within 48 characters: no other language is that dense. Matching
# stops at the eighth, so most Vietnamese records are decided in under a microsecond.
_MARKED = "đăơưĩũĐĂƠƯĨŨ\u1ea0-\u1ef9àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ"
_DENSE_VI = re.compile(f"(?:[^{_MARKED}]*+[{_MARKED}]){{8}}")
_FOREIGN = re.compile("[^\\W\\d_A-Za-zàáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝđăơưĩũĐĂƠƯĨŨ\u1ea0-\u1ef9]")  # other letters
_WORDS = {
    # Vietnamese syllables as typed without diacritics that English does not use as words.
    "vi": "khong duoc cua toi ban la co va cac nhung mot trong cho voi nay nguoi thi khi da se ve lam nhu nao gi "
          "sao bao nhieu minh chung tai vi nen roi cung dang nhat hon rat biet muon phai viec ngay nam thoi gian "
          "tien hoi tra loi chi em anh chao cam xin giup dung den tu theo ra vao len duoi tren truoc mua hoc thay "
          "lai duong khac moi ngu tieng viet cau hieu nghia sinh vien nhan dan thanh pho nuoc nha xe",
    "en": "the a an and or of to in on at for with by from is are was were be been being it its this that these "
          "those you your i my we our they their he she his her what how why when where which who whom do does did "
          "not no can will would should could have has had if as about there here so but all any some me him them "
          "than then into out up more most just also only very",
    # French, Spanish, German, Italian, Portuguese function words: Latin text that is neither.
    "other": "le les des est et une du que qui dans pour pas sur au avec sont vous nous je el los las y es en de por "
             "una del con como pero está son der die und ist das nicht ein eine mit zu ich sie wir auf il di che non "
             "per sono os um uma não são mais",
}
_SIGNAL = {word: lang for lang, words in _WORDS.items() for word in words.split()}
_SAMPLE = 200  # characters: enough to tell the languages apart, and the cost stays bounded


def detect_language(text: str) -> str:
    """Return "vi", "en" or "other" from Vietnamese letters, common syllables typed without
    diacritics, English function words and the script.

        detect_language("Hà Nội là thủ đô của Việt Nam.") == "vi"
        detect_language("toi khong biet ban co the giup toi duoc khong") == "vi"
        detect_language("What is the capital of Vietnam?") == "en"
        detect_language("12345") == detect_language("Привет, как дела?") == "other"
    """
    if _DENSE_VI.match(text, 0, 48):
        return "vi"
    sample = text[:_SAMPLE]
    chars = len(sample) - sample.count(" ")
    if sample.isascii():
        return _vote(sample, 0.0, 0)
    vi_only = len(_VI_ONLY.findall(sample))
    if vi_only * 8 >= chars:  # one character in eight: only Vietnamese text is that dense
        return "vi"
    foreign = len(_FOREIGN.findall(sample))
    if foreign * 2 >= chars:  # mostly another script
        return "other"
    return _vote(sample, vi_only + 0.5 * len(_VI_SHARED.findall(sample)), foreign)


def _vote(sample: str, vi_marks: float, foreign: int) -> str:
    """Word votes; marked letters stand in for marked words (most Vietnamese syllables carry one)."""
    words = sample.lower().split()  # punctuation stays attached: a few words lost, ~4x faster than a regex
    langs = list(map(_SIGNAL.get, words))
    vi = langs.count("vi") + vi_marks
    # Function words outweigh the names, borrowed terms and shared accents a sentence carries.
    en = 1.5 * langs.count("en")
    other = 1.5 * langs.count("other") + foreign / 4
    if vi > en and vi > other and vi >= 0.3 * len(words):
        return "vi"
    if en > vi and en > other:
        return "en"
    return "other"
