import pytest

from luyen.data.scrub import PII_KINDS, PLACEHOLDERS, SECRET_KINDS, Scrubber, is_card_number

# Provider keys are assembled at run time so that secret scanners on the repository host do not
# take these fixtures for leaked keys.
ALNUM = "aB3dE5gH7jK9mN1pQ2rS4tU6vW8xY0zC"  # 32 mixed characters


def key(prefix: str, n: int, alphabet: str = ALNUM) -> str:
    return prefix + (alphabet * 3)[:n]


AWS_ID = "AKIA" + "IOSFODNN7EXAMPL3"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
JWT = ".".join(("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"))
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n-----END RSA PRIVATE KEY-----"

API_KEYS = [
    key("sk-proj-", 40), key("sk-", 48), key("sk-ant-api03-", 40),  # OpenAI, Anthropic
    key("ghp_", 36), key("gho_", 36), key("ghs_", 36), key("github_pat_", 40),  # GitHub
    key("glpat-", 20), key("AIza", 35), key("xoxb-", 40, "1234567890-abcdef"),  # GitLab, Google, Slack
    key("sk_live_", 24), key("rk_live_", 24), key("hf_", 34), key("npm_", 36),  # Stripe, Hugging Face, npm
    key("SK", 32, "0123456789abcdef"), key("AC", 32, "0123456789abcdef"),  # Twilio
    "SG." + key("", 22) + "." + key("", 43),  # SendGrid
]


def redact(text: str) -> str:
    return Scrubber().scrub(text)[0]


def test_kinds_and_placeholders():
    assert SECRET_KINDS == ("api_key", "private_key", "jwt", "password")
    assert PII_KINDS == ("email", "phone", "card_number", "vn_id")
    assert PLACEHOLDERS["card_number"] == "<CARD_NUMBER>" and PLACEHOLDERS["vn_id"] == "<VN_ID>"


@pytest.mark.parametrize("api_key", API_KEYS)
def test_api_keys_of_common_providers(api_key):
    assert Scrubber().scrub(f"Khoá của tôi là {api_key} nhé") == ("Khoá của tôi là <API_KEY> nhé", {"api_key": 1})


@pytest.mark.parametrize("text", [
    "risk-free-investment-strategies-for-beginners",  # holds "sk-" inside a word
    "sk-short", "ghp_short", "hf_token", "glpat-abc", "AIza is a prefix", "npm_install", "SG.com",
    "xoxo-hugs-and-kisses-forever-and-ever", "AC/DC", "SKU12345", "task_live_demo",
])
def test_api_key_look_alikes_stay(text):
    assert Scrubber().scrub(text) == (text, {})


def test_aws_key_id_and_the_secret_near_it():
    text = f"aws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}"
    assert Scrubber().scrub(text) == ("aws_access_key_id = <API_KEY>\naws_secret_access_key = <API_KEY>", {"api_key": 2})
    assert redact(f"{AWS_ID} {AWS_SECRET}") == "<API_KEY> <API_KEY>"
    assert redact(f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}") == "AWS_SECRET_ACCESS_KEY=<API_KEY>"
    assert redact("ASIA" + AWS_ID[4:]) == "<API_KEY>"
    assert redact(f"{AWS_ID}1") == f"{AWS_ID}1"  # 17 characters after AKIA is not a key id


def test_private_key_block_multiline_and_cut_short():
    assert Scrubber().scrub(f"Đây là khoá:\n{PEM}\nĐừng chia sẻ.") == ("Đây là khoá:\n<PRIVATE_KEY>\nĐừng chia sẻ.",
                                                                     {"private_key": 1})
    cut = PEM.split("\n-----END")[0] + "\nThanks, cảm ơn"
    assert redact(cut) == "<PRIVATE_KEY>\nThanks, cảm ơn"
    assert redact("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----") == "<PRIVATE_KEY>"
    public = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
    assert redact(public) == public


def test_jwt():
    assert Scrubber().scrub(f"Authorization: Bearer {JWT}") == ("Authorization: Bearer <JWT>", {"jwt": 1})
    for text in ("eyJhbGciOiJIUzI1NiJ9", "eyJ là gì?", "JSON bắt đầu bằng eyJ"):
        assert redact(text) == text


def test_password_in_url_keeps_scheme_user_and_host():
    assert Scrubber().scrub("Kết nối postgres://admin:hunter2pass@db.example.com:5432/app") == (
        "Kết nối postgres://admin:<PASSWORD>@db.example.com:5432/app", {"password": 1})
    assert redact("redis://:s3cr3t@cache.local") == "redis://:<PASSWORD>@cache.local"
    for text in ("https://user@example.com/a", "http://example.com:8080/path", "https://example.com/a@b"):
        assert redact(text) == text


def test_email():
    assert Scrubber().scrub("Liên hệ an.nguyen+hr@cong-ty.com.vn nhé.") == ("Liên hệ <EMAIL> nhé.", {"email": 1})
    assert redact("Email:AN@EXAMPLE.COM") == "Email:<EMAIL>"
    for text in ("@username trên Twitter", "a@b", "user@localhost", "giá 5@10k"):
        assert redact(text) == text


@pytest.mark.parametrize("phone", [
    "0912 345 678", "0912.345.678", "0912-345-678", "0912345678", "091 234 5678", "0387 654 321",
    "+84 912.345.678", "+84912345678", "(+84) 912 345 678", "+84 (0) 912 345 678",
    "028 3823 4567", "(028) 3823 4567", "024.3823.4567", "0236 3822 123", "+84 28 3823 4567",
    "+1 (415) 555-2671", "+44 20 7946 0958", "+65 6123 4567",
])
def test_phone_numbers(phone):
    assert Scrubber().scrub(f"Gọi {phone} để đặt vé.") == ("Gọi <PHONE> để đặt vé.", {"phone": 1})


@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555 5555 5555 4444",
    "3782 822463 10005", "2223 0031 2200 3222", "4222222222222",  # Amex 4-6-5, Mastercard 2-series, 13 digits
])
def test_card_numbers_that_pass_luhn(card):
    assert Scrubber().scrub(f"Thẻ {card} hết hạn") == ("Thẻ <CARD_NUMBER> hết hạn", {"card_number": 1})


def test_luhn():
    assert is_card_number("4111111111111111") and not is_card_number("4111111111111112")
    assert not is_card_number("2020202120222023")  # Luhn-valid, but years are not a card network prefix


@pytest.mark.parametrize("text,expected", [
    ("CCCD 001099012345", "CCCD <VN_ID>"),
    ("Số căn cước công dân: 079 203 012 345", "Số căn cước công dân: <VN_ID>"),
    ("số định danh 001099012345", "số định danh <VN_ID>"),
    ("CMND: 123456789", "CMND: <VN_ID>"),
    ("số chứng minh nhân dân 023.456.789", "số chứng minh nhân dân <VN_ID>"),
    ("ID 123 456 789", "ID <VN_ID>"),
    ("cmt 025123456 cấp ngày 01/02/2010", "cmt <VN_ID> cấp ngày 01/02/2010"),
    ("Mã số 001099012345 trên thẻ", "Mã số <VN_ID> trên thẻ"),  # the CCCD structure needs no word before it
])
def test_vietnamese_id_numbers(text, expected):
    assert Scrubber().scrub(text) == (expected, {"vn_id": 1})


@pytest.mark.parametrize("text", [
    "Giá vé là 1.200.000 đồng, giảm còn 999.000đ.",
    "Căn hộ giá 2.500.000.000 đồng, tăng +1.200.000.000 đồng so với năm 2020.",
    "Tài khoản cộng +12.500.000 VND",
    "Năm 2023 và 1990-2020, các năm 2020 2021 2022 2023.",
    "Chuyến bay SV123 và VN254, VJ 122 cất cánh lúc 10:30.",
    "Ngày 15/09/2023, hoặc 2023-09-15 10:30:00.",
    "Đơn hàng #DH20230915001, mã đơn 123456789, mã vận đơn 8812345678901.",
    "Số 100000000000 và 0123 456 789 không phải điện thoại.",
    "Tỷ lệ 0.912345678 và phiên bản v1.2.3, IP 192.168.100.200.",
    "Số thẻ sai 4111 1111 1111 1112.",  # 16 digits failing Luhn
    "Hotline 1900 1234 hoặc 1800 599 920.",
    "SELECT * FROM users WHERE id = 123456789;",
    "Dân số 98.000.000 người, diện tích 331.212 km2.",
])
def test_ordinary_numbers_are_not_personal_data(text):
    assert Scrubber().scrub(text) == (text, {})


def test_multiple_findings_and_vietnamese_around_them_untouched():
    text = (f"Chào anh Hoà, email của tôi là chi.tran@example.vn, điện thoại 0912 345 678, "
            f"thẻ 4111 1111 1111 1111, CCCD 001099012345 và khoá {API_KEYS[0]}. Cảm ơn nhiều!")
    scrubbed, counts = Scrubber().scrub(text)
    assert scrubbed == ("Chào anh Hoà, email của tôi là <EMAIL>, điện thoại <PHONE>, thẻ <CARD_NUMBER>, "
                        "CCCD <VN_ID> và khoá <API_KEY>. Cảm ơn nhiều!")
    assert counts == {"api_key": 1, "email": 1, "phone": 1, "card_number": 1, "vn_id": 1}
    assert Scrubber().scrub("Gọi 0912 345 678 hoặc 0987.654.321") == ("Gọi <PHONE> hoặc <PHONE>", {"phone": 2})


def test_clean_text_is_returned_as_is():
    text = "Học máy là một nhánh của trí tuệ nhân tạo. Machine learning is a branch of AI - and SQL."
    assert Scrubber().scrub(text) == (text, {})
    assert Scrubber().scrub("") == ("", {})


def test_scrubbing_twice_changes_nothing_more():
    once, _ = Scrubber().scrub(f"mail an@example.com, key {API_KEYS[3]}, gọi +84 912 345 678")
    assert Scrubber().scrub(once) == (once, {})


def test_redact_drop_keep():
    text = f"Gọi 0912 345 678, token {API_KEYS[3]}"
    redacted = "Gọi <PHONE>, token <API_KEY>"
    counts = {"phone": 1, "api_key": 1}

    default = Scrubber()
    assert default.scrub(text) == (redacted, counts) and not default.should_drop(counts)

    keep_all = Scrubber(secrets="keep", pii="keep")
    assert keep_all.scrub(text) == (text, counts) and not keep_all.should_drop(counts)

    drop_pii = Scrubber(secrets="keep", pii="drop")
    assert drop_pii.scrub(text) == (f"Gọi <PHONE>, token {API_KEYS[3]}", counts)  # dropped kinds are redacted too
    assert drop_pii.should_drop(counts) and drop_pii.should_drop({"email": 2})
    assert not drop_pii.should_drop({"api_key": 1}) and not drop_pii.should_drop({})

    drop_secrets = Scrubber(secrets="drop", pii="redact")
    assert drop_secrets.should_drop({"jwt": 1}) and not drop_secrets.should_drop({"phone": 3})


def test_kept_url_password_is_not_then_taken_for_an_email():
    text = "postgres://admin:hunter2pass@db.example.com/app"
    assert Scrubber(secrets="keep").scrub(text) == (text, {"password": 1})


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="pii"):
        Scrubber(pii="mask")
