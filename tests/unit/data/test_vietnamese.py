import unicodedata

import pytest

from luyen.data.vietnamese import _SIGNAL, _WORDS, detect_language, normalize_tone_marks

# (old style, new style): the mark on the second vowel of an open oa/oe/uy, or on the first.
STYLE_PAIRS = [
    ("hoà", "hòa"), ("hoá", "hóa"), ("hoả", "hỏa"), ("hoạ", "họa"), ("toà", "tòa"), ("xoá", "xóa"),
    ("khoá", "khóa"), ("loà", "lòa"), ("goá", "góa"), ("đoá", "đóa"), ("khoả", "khỏa"), ("oà", "òa"),
    ("khoẻ", "khỏe"), ("loè", "lòe"), ("xoè", "xòe"), ("toé", "tóe"), ("hoè", "hòe"), ("nhoè", "nhòe"),
    ("oẹ", "ọe"), ("thuỷ", "thủy"), ("tuỳ", "tùy"), ("huỷ", "hủy"), ("luỹ", "lũy"), ("suý", "súy"),
    ("thuý", "thúy"), ("nguỵ", "ngụy"), ("uỷ", "ủy"), ("uý", "úy"), ("thuỵ", "thụy"), ("chuỳ", "chùy"),
    ("Hoà", "Hòa"), ("HOÀ", "HÒA"), ("Thuỷ", "Thủy"), ("UỶ", "ỦY"), ("KhoẺ", "KhỏE"), ("ĐOÁ", "ĐÓA"),
]
# The same in both styles: a final consonant or vowel follows, qu / gi own the u / i, or no glide pair.
UNCHANGED = ["hoàn", "hoàng", "toán", "ngoài", "xoáy", "ngoẻo", "khuya", "khuỷu", "thuyền", "huých", "quý", "quỳ",
             "quả", "quà", "già", "giữa", "của", "mùa", "hoặc", "thuở", "huế", "thuế", "Nguyễn", "Quỳnh",
             "hoa", "tuy", "qua", "HOÀN", "Quý"]


@pytest.mark.parametrize("old,new", STYLE_PAIRS)
def test_tone_style_table_both_ways(old, new):
    assert normalize_tone_marks(old, "new") == new
    assert normalize_tone_marks(new, "old") == old
    assert normalize_tone_marks(old, "old") == old and normalize_tone_marks(new, "new") == new


@pytest.mark.parametrize("word", UNCHANGED)
def test_syllables_outside_the_rule_are_never_touched(word):
    assert normalize_tone_marks(word, "new") == word
    assert normalize_tone_marks(word, "old") == word


def test_full_sentence_and_round_trip():
    old = ("Hoà bình và sức khoẻ là quý nhất; Uỷ ban tuỳ ý xoá hồ sơ của thuỷ thủ Nguyễn Văn Hoàn "
           "vào mùa khuya, ngoài ra HOÀ còn hoạ tranh.")
    new = ("Hòa bình và sức khỏe là quý nhất; Ủy ban tùy ý xóa hồ sơ của thủy thủ Nguyễn Văn Hoàn "
           "vào mùa khuya, ngoài ra HÒA còn họa tranh.")
    assert normalize_tone_marks(old, "new") == new
    assert normalize_tone_marks(new, "old") == old
    assert normalize_tone_marks(normalize_tone_marks(old, "new"), "old") == old


def test_output_stays_nfc_and_other_text_is_untouched():
    text = "Giá 1.200.000đ — hoà (hoà!) 'thuỷ' hoà2 English words: koala, toe, buy."
    out = normalize_tone_marks(text, "new")
    assert out == "Giá 1.200.000đ — hòa (hòa!) 'thủy' hòa2 English words: koala, toe, buy."
    assert unicodedata.is_normalized("NFC", out)
    assert normalize_tone_marks("", "new") == ""


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="style"):
        normalize_tone_marks("hoà", "keep")


VI = [
    "Hà Nội là thủ đô của Việt Nam.",
    "Xin chào, tôi có thể giúp gì cho bạn?",
    "Hành lý xách tay tối đa 7 kg.",
    "Học máy là một nhánh của trí tuệ nhân tạo.",
    "Hòa bình",
    "Cảm ơn",
    "Làm sao để fine-tune model Gemma với dataset của tôi?",
    "Bạn có thể giải thích the attention mechanism in transformers không?",
    "toi khong biet ban co the giup toi duoc khong",  # typed without diacritics
    "cam on ban rat nhieu",
    "cho toi hoi gia ve may bay di Da Nang bao nhieu",
    "Hỏi: Giá vé bao nhiêu? Đáp: 1.200.000 đồng.",
]
EN = [
    "What is the capital of Vietnam?",
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning is a branch of artificial intelligence.",
    "Fine-tuning adapts a pretrained model to your data.",
    "Python is a programming language.",
    "How do I change my flight after paying by card?",
    "I love phở and bánh mì.",
    "My name is Nguyễn Thị Minh Khai and I work in Đà Nẵng.",
    "The flight VN254 departs at 10:30 from Tân Sơn Nhất.",
    "Can you help me with this question?",
    "You can change it online in the manage booking section.",
]
OTHER = [
    "", "12345 678", "!!! ??? 123", "Привет, как дела?", "你好世界", "สวัสดีครับ", "مرحبا بالعالم",
    "Das ist nicht gut, aber die Katze ist schön.", "Le café est très bon et la crème brûlée aussi.",
]


@pytest.mark.parametrize("text", VI)
def test_detects_vietnamese(text):
    assert detect_language(text) == "vi"


@pytest.mark.parametrize("text", EN)
def test_detects_english(text):
    assert detect_language(text) == "en"


@pytest.mark.parametrize("text", OTHER)
def test_detects_other(text):
    assert detect_language(text) == "other"


def test_word_lists_do_not_overlap():
    assert len(_SIGNAL) == sum(len(words.split()) for words in _WORDS.values())


def test_only_the_start_of_a_long_text_is_read():
    assert detect_language("Xin chào các bạn. " * 20 + "The end of the story is in English. " * 100) == "vi"
