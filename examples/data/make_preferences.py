"""Build the Sen Vàng Airlines preference pairs (DPO/ORPO) and thumbs-up/down records (KTO).

    python examples/data/make_preferences.py

Reads `airline_qa.csv` (223 question/answer pairs) next to this file and writes:

- `airline_preferences.jsonl`: TRL-style `{"prompt", "chosen", "rejected", "flaw"}`. Every question of
  airline_qa.csv appears once verbatim with its own answer as `chosen`; 30 further pairs ask a question
  again in a customer's own words (a third of them typed without tone marks) with a different flaw.
- `airline_feedback.jsonl`: unpaired `{"prompt", "completion", "label"}` on other paraphrases of the
  questions: label true is the airline_qa.csv answer, label false a flawed answer.

How the data is made: nothing is sampled from a model. The prompts are the CSV questions and
hand-written paraphrases; `chosen` is the CSV answer, with the eight answers that name a support
mailbox lightly edited to say "the airline's support email" instead (an address would only be
redacted by the PII scrubber). The worse answers are hand-written, per question, in the tables below:

- wrong_fee: the correct answer with one amount, weight, size or deadline swapped for a wrong but
  realistic one (the swaps are hand-picked, e.g. "230.000 VND" -> "280.000 VND"; applied by `fee`).
- wrong_rule: a fluent answer that states a rule the policies contradict (e.g. economy refundable).
- rude: on topic and mostly correct, but dismissive or scolding.
- hallucinated: invents a fee, service or rule the policies do not have.
- evasive: polite, no answer ("vui lòng liên hệ tổng đài").
- off_topic: answers something else, either hand-written small talk or the CSV answer of an unrelated
  question (`borrow`).

Rejected answers are written to about the chosen answers' length (a rude or evasive reply is still a
full sentence or two) so that length does not give the preference away; the script prints the mean
chosen/rejected word-count ratio and the flaw distribution. The only randomness is the order of the
output records, shuffled with a fixed seed, so the files are the same on every run.
"""
from __future__ import annotations

import csv
import json
import random
import re
import statistics
import sys
import unicodedata
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611
FLAWS = ("wrong_fee", "wrong_rule", "rude", "hallucinated", "evasive", "off_topic")
R, D, H, E = "wrong_rule", "rude", "hallucinated", "evasive"


def fee(*pairs: str) -> tuple:
    """A wrong_fee answer: the chosen answer with each (old, new) substring pair replaced."""
    assert len(pairs) % 2 == 0
    return ("wrong_fee", list(zip(pairs[::2], pairs[1::2])))


def borrow(other: int) -> tuple:
    """An off_topic answer: the correct answer to another, unrelated question."""
    return ("off_topic", other)


def other(text: str) -> tuple:
    """A hand-written off_topic answer."""
    return ("off_topic", text)


# The answers that name a support mailbox, without the address.
CHOSEN_EDITS = {
    80: 'Sen Vàng Airlines hỗ trợ sửa lỗi chính tả tối đa 3 ký tự trong họ và tên, đảo thứ tự họ tên hoặc thêm, bỏ tên đệm. Quý khách liên hệ tổng đài, kênh chat, phòng vé hoặc email hỗ trợ của hãng, kèm mã đặt chỗ và ảnh giấy tờ tùy thân.',
    156: 'Được ạ, nếu phát hiện hư hỏng sau khi rời sân bay, quý khách gửi khiếu nại bằng văn bản trong vòng 7 ngày kể từ ngày nhận hành lý qua email bộ phận hành lý của hãng hoặc biểu mẫu trên website.',
    160: 'Đồ để quên trên máy bay được lưu giữ 30 ngày. Quý khách gửi email cho bộ phận hành lý của hãng (địa chỉ có trên website senvang.example) kèm số hiệu chuyến bay, số ghế và mô tả đồ vật.',
    170: 'Để sửa tên hoặc ngày sinh, quý khách vui lòng gửi ảnh giấy tờ tùy thân qua email hỗ trợ của hãng (địa chỉ có trên website senvang.example). Email và số điện thoại thì quý khách tự cập nhật được trong ứng dụng.',
    191: 'Nếu dịch vụ không hoạt động trong phần lớn thời gian bay, quý khách gửi yêu cầu hoàn tiền qua email hỗ trợ của hãng trong vòng 30 ngày kể từ ngày bay, kèm số hiệu chuyến bay và biên nhận thanh toán.',
    197: 'Quý khách gửi email đến bộ phận hóa đơn của hãng trong vòng 30 ngày kể từ ngày lập hóa đơn, kèm mã đặt chỗ, số hóa đơn và thông tin đúng. Hãng sẽ lập hóa đơn điều chỉnh hoặc hóa đơn thay thế.',
    206: 'Quý khách kiểm tra hộp thư kể cả thư rác và mục "Quản lý đặt chỗ". Nếu sau 2 giờ vẫn chưa có vé, vui lòng liên hệ tổng đài hoặc email hỗ trợ của hãng, gửi kèm ảnh chụp giao dịch.',
    209: 'Vé đoàn dành cho nhóm từ 10 hành khách trở lên đi cùng chuyến bay và cùng hành trình. Quý khách gửi yêu cầu qua biểu mẫu "Đặt vé đoàn" trên website senvang.example hoặc email bộ phận vé đoàn của hãng.',
}

# One worse answer for every question of airline_qa.csv, keyed by its row index (0-based).
REJECTED = {
    0: (H, 'Sen Vàng Airlines có bốn hạng vé: Phổ thông Tiết kiệm, Phổ thông Linh hoạt, Phổ thông Đặc biệt và Thương gia. Phổ thông Đặc biệt có ghế rộng hơn, 15 kg xách tay và suất ăn nóng.'),
    1: fee('230.000 VND', '280.000 VND'),
    2: (R, 'Vé Phổ thông Linh hoạt và vé Tiết kiệm đều có 7 kg xách tay và 20 kg ký gửi, chỉ khác ở chỗ vé Linh hoạt được đổi ngày bay miễn phí. Cả hai hạng đều không được hoàn vé; nếu không bay, quý khách chỉ được bảo lưu giá trị vé vào Ví Sen Vàng.'),
    3: fee('40 kg ký gửi', '30 kg ký gửi'),
    4: (R, 'Nâng hạng từ Tiết kiệm lên Linh hoạt vẫn được tính như một lần đổi vé, nên quý khách trả phí đổi 350.000 VND mỗi chặng nội địa cộng phần chênh lệch giá vé. Việc nâng hạng chỉ thực hiện được tại quầy sân bay trong ngày bay.'),
    5: (D, 'Vé đã xuất rồi thì làm sao mà hạ hạng được hả anh chị? Hãng không có vụ hạ hạng đâu. Không muốn bay Thương gia nữa thì tự hoàn vé trước giờ bay 3 tiếng rồi đi mua vé khác, chứ hỏi tới hỏi lui cũng vậy thôi.'),
    6: (E, 'Dạ thông tin hạng vé của mỗi đặt chỗ sẽ khác nhau nên em không thể trả lời chung được ạ. Quý khách vui lòng liên hệ tổng đài hoặc ghé phòng vé gần nhất để nhân viên kiểm tra và tư vấn cụ thể giúp quý khách nhé.'),
    7: (R, 'Đó là thời hạn cuối cùng để làm thủ tục tại quầy sân bay. Nếu quý khách đến sau mốc 3 giờ trước giờ khởi hành, quầy sẽ không nhận khách và hành lý nữa, và vé của quý khách được tính là no-show.'),
    8: fee('10 kg với vé Phổ thông Linh hoạt', '12 kg với vé Phổ thông Linh hoạt'),
    9: fee('56 x 36 x 23 cm', '60 x 40 x 25 cm'),
    10: (D, 'Được, một vali một ba lô, quy định ghi rõ rồi mà. Ba lô không quá 40 x 30 x 15 cm, cả hai món vẫn cân chung trong tiêu chuẩn xách tay nha, đừng để ra cửa bị cân dư rồi lại kêu.'),
    11: borrow(187),
    12: fee('50.000 VND/kg', '100.000 VND/kg'),
    13: (H, 'Được ạ, quý khách có thể mua gói Xách tay Plus thêm 3 kg với giá 99.000 VND mỗi chặng nội địa trong mục "Quản lý đặt chỗ", chậm nhất 6 giờ trước giờ khởi hành.'),
    14: (R, 'Được ạ, hai vợ chồng cùng một đặt chỗ thì tiêu chuẩn xách tay được cộng chung, ví dụ hai vé Tiết kiệm được mang tổng cộng 14 kg và chia giữa các kiện thế nào cũng được. Quý khách chỉ cần làm thủ tục cùng lúc tại quầy.'),
    15: (R, 'Có ạ, kiện xách tay gửi xuống khoang hàng tại cửa ra máy bay sẽ được tính phí như hành lý quá cước, 50.000 VND/kg với chặng nội địa. Quý khách thanh toán ngay tại cửa bằng thẻ hoặc tiền mặt trước khi lên máy bay.'),
    16: fee('23 kg', '20 kg'),
    17: (D, 'Mỗi kiện tối đa 32 ký, tổng ba chiều không quá 203 phân, trên web ghi đầy đủ rồi. Nặng hơn thì về nhà chia ra hoặc gửi theo đường hàng hóa, đừng mang ra quầy rồi bắt nhân viên phải nhận.'),
    18: fee('10 kg', '15 kg'),
    19: (R, 'Rất tiếc, tiêu chuẩn ký gửi được tính riêng cho từng hành khách và không được gộp, kể cả khi đi cùng một đặt chỗ. Mỗi người chỉ được ký gửi đúng 23 kg trên kiện của mình, phần dư phải trả phí quá cước.'),
    20: (E, 'Dạ việc nhận lại hành lý khi nối chuyến còn tùy hành trình, sân bay và từng vé cụ thể ạ. Quý khách vui lòng hỏi lại nhân viên tại quầy làm thủ tục khi ra sân bay để được hướng dẫn chính xác nhất nhé.'),
    21: other('Dạ, trên chuyến bay quý khách có thể thưởng thức phở bò, cơm gà Hội An hay bánh mì thịt từ thực đơn Sen Vàng Café. Nếu đặt trước qua mục "Quản lý đặt chỗ" chậm nhất 12 giờ, quý khách còn được giảm 10% ạ.'),
    22: (D, 'Để laptop trong vali ký gửi mà có hư hỏng, mất mát thì ráng chịu, hãng đền không được bao nhiêu đâu. Đồ quý thì tự cầm theo người, còn sạc dự phòng thì khỏi ký gửi, cấm rồi.'),
    23: (D, 'Nội địa thì 40 phút trước giờ bay, quốc tế 50 phút, quá giờ là đóng quầy, không nhận nữa. Lần nào cũng có người tới trễ rồi đứng năn nỉ, nói trước cho biết vậy.'),
    24: fee('230.000 VND', '250.000 VND'),
    25: (R, 'Quý khách có thể mua gói hành lý trả trước ngay tại quầy làm thủ tục trong ngày bay với cùng mức giá như trên website. Vì vậy không cần mua trước, cứ ra sân bay cân hành lý rồi chọn gói phù hợp là được ạ.'),
    26: fee('50.000 VND/kg', '80.000 VND/kg'),
    27: (R, 'Được ạ, với vé khứ hồi quý khách chỉ cần mua gói hành lý một lần, gói sẽ tự động áp dụng cho cả chiều đi và chiều về. Hai chiều bắt buộc dùng cùng một gói, ví dụ 20 kg cho cả đi lẫn về.'),
    28: (H, 'Được ạ, quý khách đổi sang gói 25 kg với phí đổi gói 50.000 VND cộng phần chênh lệch; sau này cũng có thể chuyển xuống gói nhỏ hơn và nhận lại tiền thừa.'),
    29: (R, 'Rất tiếc, gói hành lý trả trước gắn với chuyến bay ban đầu nên khi đổi vé, gói sẽ mất giá trị và quý khách cần mua lại gói mới.'),
    30: fee('23 + 15 = 38 kg', '20 + 15 = 35 kg'),
    31: (D, 'Hãng hủy chuyến thì đương nhiên hoàn tiền gói hành lý rồi, cái này cũng phải hỏi. Chậm từ 3 tiếng mà hoàn vé thì cũng được hoàn luôn, cứ gửi yêu cầu hoàn vé là tự có tiền, khỏi hỏi thêm.'),
    32: fee('300.000 VND', '500.000 VND'),
    33: (H, 'Xe đạp được nhận miễn phí, không tính vào tiêu chuẩn hành lý, nếu quý khách mua dịch vụ đóng gói tại sân bay giá 150.000 VND. Nhân viên sẽ tự tháo bàn đạp và tay lái giúp quý khách nên không cần đăng ký trước.'),
    34: (R, 'Được ạ, xe đạp điện được ký gửi nếu pin đã tháo rời và mang lên khoang; quý khách cần đăng ký trước 24 giờ.'),
    35: borrow(202),
    36: (E, 'Dạ nhạc cụ cỡ lớn như đàn cello là trường hợp đặc biệt, cần xem xét riêng theo từng chuyến bay ạ. Quý khách vui lòng liên hệ tổng đài để được tư vấn, nhân viên sẽ kiểm tra và phản hồi cho quý khách sau.'),
    37: other('Dạ, nếu quý khách đi lướt sóng ở Đà Nẵng hay Nha Trang thì nên đi vào mùa khô, sóng đẹp và ít mưa. Quý khách nhớ mang theo kem chống nắng và xem dự báo thời tiết trước chuyến đi để có kỳ nghỉ trọn vẹn nhé ạ.'),
    38: (D, 'Bình lặn thì phải xả hết khí, mở van ra rồi mới ký gửi, cái này ai đi lặn cũng biết mà. Nhớ đăng ký trước 24 tiếng, sát giờ mới báo thì đừng trách sao hãng không nhận.'),
    39: (H, 'Quý khách yên tâm, đồ gốm ký gửi có gắn nhãn "Hàng dễ vỡ" sẽ được Sen Vàng Airlines bồi thường toàn bộ giá trị nếu bị vỡ, không cần khai báo. Hãng còn có dịch vụ đóng thùng gỗ tại sân bay với giá 200.000 VND mỗi kiện.'),
    40: (R, 'Được ạ, mèo có tổng trọng lượng cả lồng dưới 7 kg được mang lên khoang hành khách và đặt dưới ghế phía trước. Mèo nặng hơn mức này sẽ được vận chuyển trong khoang hàng có điều hòa áp suất và nhiệt độ.'),
    41: fee('400.000 VND', '300.000 VND'),
    42: (H, 'Được ạ, Sen Vàng Airlines nhận vận chuyển chó, mèo trên chặng đi Hàn Quốc trong khoang hàng với phí 1.500.000 VND mỗi lồng. Quý khách cần chuẩn bị giấy kiểm dịch xuất khẩu và đăng ký trước 48 giờ.'),
    43: (D, 'Pug là giống mũi ngắn, hãng không nhận đâu. Mấy giống như Bulldog, Shih Tzu hay mèo Ba Tư cũng vậy, đừng mang ra sân bay rồi năn nỉ, nhân viên không nhận được đâu.'),
    44: (H, 'Quý khách cần giấy kiểm dịch, sổ tiêm phòng dại và giấy khám sức khỏe do phòng khám thú y của Sen Vàng tại sân bay cấp trong vòng 24 giờ trước chuyến bay, phí khám 150.000 VND. Chó, mèo phải từ 8 tuần tuổi trở lên.'),
    45: (D, 'Phải đăng ký trước ít nhất 48 tiếng qua tổng đài hoặc phòng vé, mỗi chuyến chỉ có 3 lồng thôi. Để sát ngày mới đăng ký rồi hết chỗ thì đừng có trách hãng.'),
    46: (R, 'Được ạ, hành khách mang thú cưng vẫn làm thủ tục trực tuyến bình thường, sau đó đến quầy gửi hành lý trước 40 phút như các hành khách khác để gửi lồng. Nhân viên chỉ kiểm tra nhanh lồng vận chuyển khi nhận.'),
    47: (E, 'Dạ trường hợp này em cần kiểm tra thêm với bộ phận vận chuyển thú cưng ạ. Quý khách vui lòng gọi tổng đài khi đăng ký để được tư vấn, vì mỗi chuyến bay có thể có quy định riêng về lồng vận chuyển.'),
    48: (R, 'Được ạ, sạc dự phòng dưới 20.000 mAh có thể để trong vali ký gửi nếu đã tắt nguồn và bọc kín cổng sạc. Loại dung lượng lớn hơn thì quý khách mang theo người và không sử dụng trong lúc bay.'),
    49: fee('160 Wh', '200 Wh'),
    50: fee('100 ml', '200 ml'),
    51: (R, 'Có ạ, chuyến nội địa cũng giới hạn 100 ml mỗi chai, lọ, tất cả đựng chung trong túi nhựa trong suốt, tổng không quá 1 lít.'),
    52: (H, 'Quý khách mua sầu riêng tại cửa hàng đặc sản Sen Vàng trong sân bay sẽ được đóng hộp khử mùi chuyên dụng và mang lên khoang miễn phí, tối đa 2 kg. Sầu riêng mua bên ngoài thì chỉ được ký gửi.'),
    53: fee('5 lít', '10 lít'),
    54: (D, 'Dao trên 6 cm thì bỏ vào vali ký gửi, mang theo người là bị thu ở máy soi, lúc đó đừng có cãi với nhân viên an ninh. Quy định đơn giản vậy thôi mà.'),
    55: (R, 'Được ạ, thuốc lá điện tử để trong vali ký gửi được nếu quý khách đã tháo pin ra mang theo người. Trên máy bay thì không được sử dụng.'),
    56: fee('350.000 VND', '250.000 VND'),
    57: (R, 'Được ạ, vé Phổ thông Tiết kiệm được đổi cả ngày bay và chặng bay với phí 350.000 VND mỗi chặng nội địa, cộng chênh lệch giá vé nếu có. Việc đổi cần thực hiện chậm nhất 3 giờ trước giờ khởi hành.'),
    58: (E, 'Dạ việc đổi chặng bay còn phụ thuộc vào điều kiện vé và tình trạng chỗ trên chuyến mới ạ. Quý khách vui lòng gọi tổng đài để nhân viên kiểm tra đặt chỗ và báo lại cụ thể cho quý khách nhé.'),
    59: (R, 'Có ạ, với mọi hạng vé kể cả Tiết kiệm, phần chênh lệch khi đổi sang chuyến rẻ hơn được hoàn bằng tiền về tài khoản ngân hàng của quý khách trong vòng 7 ngày làm việc.'),
    60: (H, 'Được ạ, quý khách có thể dùng dịch vụ Đổi vé khẩn cấp tại quầy sân bay đến 1 giờ trước giờ khởi hành, phí 500.000 VND mỗi chặng ngoài phí đổi thông thường. Dịch vụ tùy tình trạng chỗ trống trên chuyến mới.'),
    61: (E, 'Dạ việc đổi vé có nhiều cách tùy loại vé và nơi mua ạ. Quý khách vui lòng liên hệ tổng đài của hãng để được hướng dẫn cụ thể, nhân viên sẽ kiểm tra đặt chỗ và báo lại cho quý khách.'),
    62: fee('2 x 350.000 = 700.000 VND', '2 x 300.000 = 600.000 VND'),
    63: (R, 'Có ạ, khi quý khách đổi vé thì ghế đã mua được chuyển tự động sang chuyến bay mới, giữ nguyên số ghế nếu còn trống. Riêng gói hành lý trả trước thì phải mua lại vì không chuyển được.'),
    64: (R, 'Có ạ, vé Phổ thông Tiết kiệm được hoàn với phí 300.000 VND mỗi chặng nội địa, phần còn lại được hoàn về thẻ của quý khách. Yêu cầu hoàn cần gửi chậm nhất 3 giờ trước giờ khởi hành.'),
    65: fee('300.000 VND', '450.000 VND'),
    66: (D, 'Thương gia thì hoàn miễn phí, giá vé với thuế phí trả lại đủ hết. Miễn là làm trước giờ bay 3 tiếng, còn để sát giờ rồi mới đòi hoàn thì chịu.'),
    67: fee('7 ngày', '3 ngày'),
    68: fee('7 đến 30 ngày', '3 đến 5 ngày'),
    69: (R, 'Rất tiếc, vé Tiết kiệm không được hoàn trong mọi trường hợp, kể cả khi hành khách phải nhập viện. Quý khách chỉ có thể đổi sang ngày khác với phí 350.000 VND mỗi chặng, cộng chênh lệch giá vé.'),
    70: (H, 'Vé trả bằng tiền mặt sẽ được hoàn bằng tiền mặt tại chính phòng vé nơi mua, sau khi trừ phí xử lý hoàn tiền mặt 50.000 VND. Quý khách nhớ mang theo biên lai và căn cước khi đến nhận.'),
    71: fee('12 tháng', '24 tháng'),
    72: (R, 'Rất tiếc, vé khứ hồi được xem là một vé trọn gói nên khi đã bay chiều đi thì chiều về không còn được hoàn nữa, kể cả với vé Linh hoạt hay Thương gia.'),
    73: other('Dạ, hiện Sen Vàng Airlines khai thác đội tàu bay Airbus A321neo và Boeing 787-9. Máy bay Boeing 787-9 có màn hình giải trí cá nhân ở mọi ghế, quý khách nhớ mang theo tai nghe riêng nếu không bay hạng Thương gia nhé.'),
    74: (H, 'Quý khách đừng lo, vé Tiết kiệm bị lỡ chuyến được chuyển miễn phí sang chuyến kế tiếp trong ngày nếu còn chỗ, chỉ cần đến quầy Hỗ trợ lỡ chuyến trong vòng 2 giờ. Sau 2 giờ thì vé mới mất giá trị.'),
    75: fee('500.000 VND', '300.000 VND'),
    76: (R, 'Không ạ, chiều đi và chiều về là hai chặng độc lập nên quý khách không bay chiều đi thì chiều về vẫn giữ nguyên. Quý khách cứ ra sân bay làm thủ tục chiều về bình thường.'),
    77: fee('500.000 VND phí no-show', '350.000 VND phí no-show', 'tổng cộng 800.000 VND', 'tổng cộng 650.000 VND'),
    78: (D, 'Chặng trước của hãng trễ thì hãng lo, không tính no-show đâu, cứ ra quầy trung chuyển mà hỏi chuyến tiếp theo. Nhưng phải là cùng một đặt chỗ nha, vé mua lẻ thì hãng không chịu.'),
    79: (R, 'Có ạ, chặng no-show vẫn được tích 50% số dặm vì quý khách đã thanh toán vé, còn gói hành lý và phí chọn chỗ được hoàn vào Ví Sen Vàng.'),
    80: fee('3 ký tự', '5 ký tự'),
    81: fee('200.000 VND', '300.000 VND'),
    82: (H, 'Được ạ, quý khách có thể chuyển nhượng vé cho người thân trong gia đình với phí chuyển nhượng 500.000 VND mỗi chặng nội địa, chậm nhất 24 giờ trước giờ khởi hành. Cần gửi kèm giấy tờ chứng minh quan hệ gia đình.'),
    83: (E, 'Dạ thời hạn sửa tên cho hành trình quốc tế còn tùy quy định của từng nước đến ạ. Quý khách nên liên hệ sớm với tổng đài để nhân viên kiểm tra, vì em không thể xác nhận thời hạn cụ thể qua kênh này.'),
    84: (D, 'Tên trên vé in không dấu hết, ai cũng vậy. Thiếu dấu không tính là sai tên, đừng gọi tổng đài chỉ vì chuyện cỏn con này.'),
    85: fee('24 giờ', '12 giờ'),
    86: (H, 'Sửa danh xưng được tính như sửa tên, phí 100.000 VND mỗi khách nội địa, miễn phí cho hội viên Bông Sen Vàng Club.'),
    87: (E, 'Dạ tùy từng trường hợp cụ thể ạ, có khi cần làm lại, có khi không. Quý khách cứ ra quầy làm thủ tục sớm một chút để nhân viên kiểm tra giúp, nếu cần gì thêm nhân viên sẽ hướng dẫn quý khách.'),
    88: (D, 'Mở trước 24 tiếng, đóng trước 60 phút, nội địa hay quốc tế cũng vậy. Thông tin này có sẵn trên app mà, chịu khó đọc một chút là thấy, đâu cần hỏi.'),
    89: (R, 'Có ạ, dù đã làm thủ tục trực tuyến, mọi hành khách vẫn phải ra quầy để đổi thẻ lên máy bay giấy và kiểm tra giấy tờ trước 40 phút so với giờ khởi hành. Thẻ lên máy bay điện tử không dùng để qua cửa an ninh được.'),
    90: fee('50 phút', '30 phút'),
    91: (H, 'Chỉ hành khách mang thú cưng và hành khách dùng hộ chiếu nước ngoài là không làm thủ tục trực tuyến được. Ngoài ra, khách trên 70 tuổi cần làm thủ tục tại quầy để nhận dịch vụ chăm sóc người cao tuổi miễn phí.'),
    92: (R, 'Rất tiếc, hành khách đi cùng em bé dưới 2 tuổi không làm thủ tục trực tuyến được, quý khách cần đến quầy để nhân viên kiểm tra giấy khai sinh của bé.'),
    93: (D, 'Check-in online thì được chọn ghế tiêu chuẩn còn trống miễn phí, còn ghế phía trước hay ghế rộng chân vẫn phải trả tiền như thường. Muốn ngồi chỗ đẹp thì chịu khó mua trước, đừng đợi check-in rồi than hết chỗ.'),
    94: borrow(163),
    95: other('Dạ, ứng dụng Sen Vàng còn có mục Sen Vàng Play với kho phim, nhạc và sách nói miễn phí trên chuyến bay. Quý khách chỉ cần kết nối mạng SenVang-WiFi trên máy bay là xem được, không cần mua gói Wi-Fi ạ.'),
    96: (D, 'Nội địa đóng quầy trước 40 phút, quốc tế 50 phút. Trễ là hệ thống đóng chuyến, có năn nỉ nhân viên cũng vô ích, nên làm ơn đi sớm giùm.'),
    97: fee('ít nhất 2 giờ', 'ít nhất 1 giờ'),
    98: fee('15 phút', '5 phút'),
    99: borrow(188),
    100: (H, 'Quầy ưu tiên dành cho hành khách Thương gia, hội viên hạng Vàng, Bạch Kim và hành khách mua dịch vụ Ưu tiên Sen Vàng giá 120.000 VND mỗi chặng khi đặt vé. Người cao tuổi chỉ được dùng quầy ưu tiên nếu trên 75 tuổi.'),
    101: (H, 'Phòng chờ Bông Sen dành cho hành khách Thương gia, hội viên từ hạng Bạc trở lên và mọi hành khách mua vé vào cửa với giá 350.000 VND mỗi lượt. Phòng chờ có ở tất cả các sân bay Sen Vàng khai thác và mở cửa 24/24.'),
    102: (E, 'Dạ em chưa có thông tin chính xác về các thiết bị tại từng sân bay ạ. Quý khách vui lòng hỏi nhân viên hướng dẫn tại nhà ga khi đến nơi, hoặc theo dõi thông báo trên website để cập nhật thêm nhé.'),
    103: (H, 'Quý khách có thể làm thủ tục muộn tại quầy Dịch vụ trễ giờ với phí 300.000 VND; quầy nhận khách đến 20 phút trước giờ khởi hành với chuyến nội địa nếu còn chỗ.'),
    104: (R, 'Hành khách từ 14 tuổi chỉ cần mang một trong các giấy tờ: thẻ căn cước, hộ chiếu, bằng lái xe, thẻ sinh viên hoặc ảnh chụp căn cước trên điện thoại là đủ, miễn là nhìn rõ thông tin và ảnh.'),
    105: (D, 'Được, VNeID mức độ 2 là dùng được, tài khoản mức 1 thì không. Kiểm tra trước ở nhà đi, đừng để ra tới cửa an ninh rồi mới loay hoay đăng nhập làm người phía sau phải chờ.'),
    106: (R, 'Trẻ em bay nội địa bắt buộc phải có hộ chiếu hoặc thẻ căn cước có ảnh; giấy khai sinh chỉ được chấp nhận với em bé dưới 2 tuổi. Quý khách nên làm căn cước cho bé trước ngày bay.'),
    107: (H, 'Quý khách ra quầy Sen Vàng tại sân bay, nhân viên sẽ cấp giấy xác nhận nhân thân tạm thời với phí 100.000 VND, chỉ cần khai họ tên và ngày sinh. Giấy này dùng được cho cả chiều đi và chiều về.'),
    108: (R, 'Được ạ, ảnh chụp căn cước rõ nét cả hai mặt trên điện thoại được chấp nhận cho chuyến bay nội địa. Quý khách chỉ cần mở ảnh cho nhân viên kiểm tra tại quầy và tại cửa an ninh.'),
    109: (D, 'Hộ chiếu phải còn hạn ít nhất 6 tháng tính từ ngày nhập cảnh, còn thị thực thì tự tìm hiểu theo nước mình đến. Chuyện cơ bản vậy, đi nước ngoài thì phải tự biết chứ.'),
    110: (E, 'Dạ giấy tờ cho khách nước ngoài tùy quốc tịch và loại thị thực ạ. Quý khách vui lòng hỏi đại sứ quán hoặc cơ quan xuất nhập cảnh trước khi đặt vé nhé.'),
    111: (R, 'Không cần ạ, em bé dưới 2 tuổi bay quốc tế được ghi chung vào hộ chiếu của cha hoặc mẹ đi cùng, quý khách chỉ cần mang theo giấy khai sinh bản gốc để đối chiếu tại quầy.'),
    112: (D, 'Dưới 2 tuổi thì mua vé em bé, 10% giá vé người lớn cộng thuế phí, ngồi trên lòng bố mẹ, không có ghế riêng. Câu này nhiều người hỏi lắm rồi, trên web ghi hết.'),
    113: borrow(173),
    114: (D, 'Bé chưa đủ 14 ngày tuổi thì hãng không chở, quy định rõ ràng rồi. Đợi bé đủ ngày hãy đặt vé, đừng đặt trước rồi ra sân bay bị từ chối lại quay sang trách nhân viên.'),
    115: (H, 'Được ạ, một người lớn có thể đi cùng hai em bé nếu đăng ký dịch vụ Nôi đôi miễn phí có trên mọi chuyến bay: một bé ngồi trên lòng, một bé nằm nôi gắn ở vách ngăn phía trước.'),
    116: (E, 'Dạ trang thiết bị cho em bé trên máy bay tùy từng chuyến và từng loại máy bay ạ. Quý khách vui lòng hỏi tiếp viên khi lên máy bay, nếu còn thì tiếp viên sẽ hỗ trợ quý khách.'),
    117: borrow(179),
    118: (R, 'Tuổi của bé được tính theo ngày khởi hành của chặng đầu tiên, nên chiều về bé vẫn dùng vé em bé và ngồi trên lòng người lớn, quý khách không cần mua thêm vé trẻ em.'),
    119: (H, 'Có ạ, tiếp viên cung cấp nước ấm miễn phí cho hạng Thương gia; với hạng phổ thông, quý khách có thể đặt trước Gói chăm sóc em bé giá 80.000 VND gồm nước ấm, bình sữa tiệt trùng và khăn ướt.'),
    120: (D, 'Bế em bé thì không được ngồi hàng thoát hiểm, đơn giản vậy thôi. Mỗi dãy ghế cũng chỉ có một em bé, nên đừng đòi ngồi chung dãy với nhà khác cũng có em bé.'),
    121: fee('48 giờ', '24 giờ'),
    122: fee('400.000 VND', '250.000 VND'),
    123: (H, 'Được ạ, bé từ 3 tuổi có thể đi một mình nếu quý khách đăng ký gói Bảo mẫu bay 1.200.000 VND mỗi chặng, có tiếp viên riêng ngồi cạnh bé suốt chuyến.'),
    124: (R, 'Có ạ, mọi trẻ dưới 16 tuổi đi một mình đều bắt buộc dùng dịch vụ trẻ em đi một mình, phí 400.000 VND mỗi chặng nội địa.'),
    125: borrow(201),
    126: (D, 'Không được đâu, dịch vụ trẻ đi một mình chỉ nhận vé Linh hoạt hoặc Thương gia thôi. Muốn tiết kiệm thì để người lớn đi cùng, còn không thì mua hạng cao hơn qua tổng đài hoặc phòng vé.'),
    127: (R, 'Được ạ, sau khi làm thủ tục và bàn giao bé cho nhân viên tại quầy, người đưa có thể ra về ngay. Người đưa và trẻ chỉ cần có mặt tại quầy trước 60 phút so với giờ khởi hành.'),
    128: other('Dạ, sân bay Tân Sơn Nhất và Nội Bài đều có bãi đỗ xe và khu vực chờ đón ở sảnh đến. Quý khách nên kiểm tra nhà ga đến và tránh giờ cao điểm để không bị kẹt xe trên đường ra sân bay ạ.'),
    129: (H, 'Nếu không có người đón, bé được đưa về khách sạn đối tác của Sen Vàng và ở miễn phí tối đa 2 đêm cho đến khi gia đình đến đón, hãng chịu mọi chi phí.'),
    130: (R, 'Có ạ, mọi hành khách mang thai từ 12 tuần trở lên đều cần giấy xác nhận đủ sức khỏe để bay của bác sĩ, cấp trong vòng 7 ngày trước ngày bay, và phải làm thủ tục tại quầy.'),
    131: (D, 'Bầu 30 tuần thì phải có giấy bác sĩ cấp trong vòng 7 ngày trước ngày bay, ghi rõ tuổi thai, ngày dự sinh. Ra quầy ký cam kết, không check-in online được, đừng hỏi lại nữa.'),
    132: fee('tuần thứ 36', 'tuần thứ 38'),
    133: (R, 'Rất tiếc, với đa thai Sen Vàng Airlines chỉ nhận chuyên chở đến hết tuần 28, nên song thai 31 tuần không được bay dù quý khách có giấy xác nhận của bác sĩ.'),
    134: (D, 'Giấy cấp 10 ngày trước thì không hợp lệ, quy định là trong vòng 7 ngày, đọc kỹ giùm. Khứ hồi mà chiều về cách ngày cấp quá 7 ngày thì đi xin giấy mới, đừng mang giấy cũ ra quầy.'),
    135: (H, 'Phụ nữ sau sinh vẫn được bay nếu có giấy xác nhận của bác sĩ. Bé 5 ngày tuổi cũng bay cùng mẹ được nếu nằm trong nôi chuyên dụng có bình oxy của Sen Vàng.'),
    136: (D, 'Mang thai thì không ngồi cạnh lối thoát hiểm được, quy định an toàn mà. Muốn đi lại cho tiện thì chọn ghế cạnh lối đi, vậy thôi, đừng đặt ghế rộng chân rồi lại bị đổi chỗ.'),
    137: fee('48 giờ', '72 giờ'),
    138: (H, 'Sen Vàng Airlines cung cấp xe lăn với phí 150.000 VND mỗi sân bay, miễn phí cho hội viên từ hạng Bạc. Quý khách đăng ký trước 24 giờ, nhân viên sẽ đón bác ngay tại cổng nhà ga và hỗ trợ đến tận ghế.'),
    139: (R, 'Xe lăn riêng được tính vào tiêu chuẩn hành lý ký gửi; nếu vượt tiêu chuẩn, phần dư tính phí quá cước 50.000 VND/kg như hành lý thường.'),
    140: fee('300 Wh', '500 Wh'),
    141: (R, 'Được ạ, quý khách được mang bình oxy cá nhân dưới 5 lít lên khoang nếu có giấy xác nhận của bác sĩ. Bình cần được đặt dưới ghế phía trước và khóa van khi không sử dụng.'),
    142: borrow(184),
    143: (E, 'Dạ đây là dịch vụ đặc biệt nên em không thể tư vấn qua kênh chat ạ. Quý khách vui lòng liên hệ tổng đài hoặc đến phòng vé, mang theo hồ sơ bệnh án để nhân viên xem xét từng trường hợp cụ thể.'),
    144: (E, 'Dạ trường hợp này quý khách vui lòng liên hệ tổng đài trước chuyến bay để trình bày nhu cầu cụ thể ạ. Nhân viên sẽ ghi nhận và xem xét khả năng hỗ trợ tùy theo tình hình thực tế tại sân bay.'),
    145: (R, 'Có ạ, tiếp viên được đào tạo để hỗ trợ hành khách đi vệ sinh, thay đồ và chăm sóc y tế cơ bản trong suốt chuyến bay, nên hành khách không cần có người đi kèm.'),
    146: (R, 'Khi chậm 3 giờ, quý khách được phục vụ nước uống và suất ăn nhẹ. Việc đổi hoặc hoàn vé miễn phí chỉ áp dụng cho vé Linh hoạt và Thương gia; vé Tiết kiệm vẫn tính phí đổi như thường.'),
    147: fee('400.000 VND', '200.000 VND'),
    148: (R, 'Chuyến bay hoãn vì bão vẫn được bồi thường 400.000 VND với chặng nội địa như các trường hợp chậm chuyến khác. Tuy nhiên hãng không bố trí khách sạn và quý khách phải trả phí nếu muốn đổi vé.'),
    149: (D, 'Dời sang hôm sau thì hãng lo khách sạn với xe đưa đón, chờ nhân viên thông báo là được. Nhà ở ngay thành phố đó thì tự về nhà ngủ, hãng chỉ hỗ trợ tiền đi lại chứ không có khách sạn đâu.'),
    150: borrow(45),
    151: fee('1.000.000 VND', '500.000 VND'),
    152: (E, 'Dạ các yêu cầu bồi thường sẽ được bộ phận liên quan xem xét và phản hồi ạ. Quý khách vui lòng chờ thêm, nếu lâu chưa thấy phản hồi thì quý khách có thể gọi tổng đài để hỏi lại tình trạng hồ sơ nhé.'),
    153: (H, 'Nếu hãng không cung cấp được suất ăn, quý khách nhận phiếu ăn điện tử 150.000 VND dùng tại các nhà hàng trong sân bay qua ứng dụng Sen Vàng. Hóa đơn tự mua bên ngoài thì không được hoàn tiền.'),
    154: (H, 'Có ạ, khi chuyến bay bị hủy và được báo trước từ 24 giờ, quý khách được bồi thường phiếu bay 300.000 VND cho mỗi chặng, ngoài việc được đổi miễn phí sang chuyến khác hoặc hoàn toàn bộ tiền vé.'),
    155: (E, 'Dạ trường hợp này quý khách cứ chờ thêm một lúc, đôi khi hành lý ra chậm ạ. Nếu vẫn không thấy, quý khách vui lòng liên hệ tổng đài sau khi về nhà để được kiểm tra và hỗ trợ theo quy định.'),
    156: fee('7 ngày', '21 ngày'),
    157: fee('21 ngày', '7 ngày'),
    158: (E, 'Dạ chính sách hỗ trợ khi thất lạc hành lý tùy từng hồ sơ ạ. Quý khách vui lòng giữ hóa đơn và chờ bộ phận hành lý liên hệ hướng dẫn thêm nhé.'),
    159: (R, 'Có ạ, bánh xe, tay kéo hay khóa vali bị gãy trong quá trình vận chuyển đều được hãng bồi thường theo giá mua vali, quý khách chỉ cần gửi ảnh chụp trong vòng 21 ngày.'),
    160: (H, 'Đồ để quên được chuyển về kho Tìm đồ thất lạc của Sen Vàng và lưu giữ 7 ngày, sau đó bị tiêu hủy. Quý khách đến nhận trực tiếp tại kho và nộp phí lưu giữ 50.000 VND mỗi ngày.'),
    161: fee('0,5%', '2%'),
    162: (H, 'Khi tìm thấy, hành lý được giao tận nhà với phí 150.000 VND mỗi kiện trong nội thành, miễn phí cho hội viên hạng Vàng trở lên. Nếu ở tỉnh khác, quý khách phải tự ra sân bay nhận.'),
    163: (R, 'Đăng ký Bông Sen Vàng Club miễn phí nhưng chỉ dành cho người từ 18 tuổi trở lên. Trẻ em không được mở tài khoản riêng mà tích dặm chung vào tài khoản của cha hoặc mẹ.'),
    164: fee('35.000 dặm', '50.000 dặm'),
    165: fee('25%', '50%'),
    166: (D, 'Hạng Vàng vào phòng chờ được, nhưng chỉ một mình thôi nhé, đừng dắt thêm người theo. Muốn dẫn khách theo thì ráng bay thêm cho lên Bạch Kim.'),
    167: borrow(194),
    168: (H, 'Hạng thẻ có hiệu lực 12 tháng và được gia hạn tự động nếu quý khách bay ít nhất 1 chặng mỗi quý; giữ cùng một hạng 3 năm liên tiếp thì hạng thẻ có hiệu lực trọn đời.'),
    169: (R, 'Được ạ, vợ chồng có thể gộp dặm vào một tài khoản chung bằng cách gửi giấy đăng ký kết hôn cho hãng. Sau khi gộp, hạng thẻ được xét theo tổng số dặm của cả hai người.'),
    170: (E, 'Dạ thông tin tài khoản hội viên được bảo mật nên em không thể hướng dẫn chi tiết qua kênh này ạ. Quý khách vui lòng liên hệ tổng đài hoặc đến phòng vé gần nhất để được hỗ trợ nhé.'),
    171: fee('710 dặm', '1.100 dặm'),
    172: (H, 'Vé Tiết kiệm chỉ được tích dặm nếu quý khách mua thêm gói Tích dặm Plus 50.000 VND mỗi chặng; khi đó quý khách nhận 100% số dặm bay.'),
    173: fee('36 tháng', '24 tháng'),
    174: borrow(51),
    175: fee('6.000 dặm', '8.000 dặm'),
    176: (D, 'Được, đăng ký mẹ vào danh sách người nhận thưởng trong tài khoản rồi đổi thôi, tối đa 5 người. Mấy cái này trên app ghi hết rồi, chịu khó đọc một chút là thấy.'),
    177: fee('5.000 dặm', '7.500 dặm'),
    178: fee('2.000 dặm', '500 dặm'),
    179: borrow(119),
    180: fee('90.000 VND', '120.000 VND'),
    181: (R, 'Rất tiếc, vé Phổ thông Linh hoạt chỉ được phục vụ nước lọc miễn phí trên mọi chặng, kể cả quốc tế; suất ăn chính chỉ dành cho hạng Thương gia.'),
    182: fee('10%', '20%'),
    183: (H, 'Mọi hành khách, kể cả vé Tiết kiệm, được đặt miễn phí suất ăn chay trong ứng dụng Sen Vàng chậm nhất 6 giờ trước giờ khởi hành. Hãng còn có thực đơn chay cao cấp giá 150.000 VND cho hạng phổ thông.'),
    184: (H, 'Trên máy bay, quý khách thanh toán qua ứng dụng Sen Vàng Pay bằng mã QR ở lưng ghế và được giảm 5% so với tiền mặt; hãng không nhận thẻ ngân hàng.'),
    185: (H, 'Được ạ, quý khách mang được 1 chai rượu mua ở cửa hàng miễn thuế lên uống, tiếp viên sẽ phục vụ ly và đá với phí mở chai 50.000 VND.'),
    186: (H, 'Quý khách yên tâm, hãng bảo đảm chuyến bay không có đậu phộng nếu quý khách đăng ký dịch vụ Chuyến bay an toàn dị ứng chậm nhất 72 giờ trước giờ khởi hành. Tiếp viên sẽ ngừng phục vụ mọi món có đậu phộng.'),
    187: (E, 'Dạ dịch vụ trên máy bay có thể thay đổi tùy chuyến và tùy thời điểm ạ. Quý khách vui lòng hỏi tiếp viên khi lên máy bay để biết chuyến của mình có những dịch vụ gì nhé, em không nắm được ạ.'),
    188: fee('99.000 VND', '129.000 VND'),
    189: (D, 'Wi-Fi trên máy bay chứ có phải mạng ở nhà đâu mà đòi gọi video. Gọi thoại, xem video nét cao hay tải file nặng đều không được, nhắn tin với lướt web thôi.'),
    190: (R, 'Hành khách Thương gia được miễn phí gói Wi-Fi Trọn chuyến. Hội viên hạng Bạc trở lên cũng được miễn phí gói Nhắn tin, còn hạng Bạch Kim được miễn phí gói Lướt web 1 giờ.'),
    191: (R, 'Rất tiếc, gói Wi-Fi đã mua không được hoàn tiền trong mọi trường hợp, kể cả khi dịch vụ không hoạt động suốt chuyến bay. Quý khách có thể phản ánh với tiếp viên để được ghi nhận.'),
    192: other('Dạ, Sen Vàng Airlines hiện khai thác các chuyến bay từ hai trung tâm chính là Tân Sơn Nhất và Nội Bài. Quý khách có thể theo dõi lịch bay và các chương trình ưu đãi mới nhất trên website senvang.example hoặc ứng dụng Sen Vàng ạ.'),
    193: (E, 'Dạ trang thiết bị trên mỗi máy bay có thể khác nhau ạ. Quý khách vui lòng hỏi tiếp viên khi lên máy bay, em không thể xác nhận trước được.'),
    194: borrow(32),
    195: (E, 'Dạ việc xuất hóa đơn sau khi đặt vé cần được bộ phận kế toán kiểm tra ạ. Quý khách vui lòng để lại thông tin, bộ phận liên quan sẽ liên hệ lại với quý khách trong thời gian sớm nhất.'),
    196: (H, 'Được ạ, quý khách gộp được tối đa 5 mã đặt chỗ vào một hóa đơn với phí xử lý 30.000 VND mỗi mã, miễn là các mã cùng tên đơn vị.'),
    197: (D, 'Mã số thuế là tự quý khách điền, sai thì cũng phải tự chịu một phần. Gửi email cho bộ phận hóa đơn trong 30 ngày kèm mã đặt chỗ, số hóa đơn với thông tin đúng, quá hạn thì khỏi sửa.'),
    198: (E, 'Dạ hóa đơn đã được gửi qua email rồi ạ, quý khách tìm lại trong hộp thư giúp em. Nếu không thấy thì quý khách gọi tổng đài để được gửi lại nhé.'),
    199: (H, 'Vé mua qua đại lý vẫn do Sen Vàng Airlines xuất hóa đơn: quý khách nhập mã đặt chỗ vào mục "Hóa đơn đại lý" trên website, phí 20.000 VND mỗi hóa đơn.'),
    200: (R, 'Rất tiếc, phí hành lý quá cước trả tại sân bay không được xuất hóa đơn VAT, quý khách chỉ nhận biên lai thu tiền tại quầy.'),
    201: (R, 'Vé thưởng được xuất hóa đơn cho toàn bộ giá trị vé quy đổi từ dặm, nên quý khách dùng được để thanh toán công tác phí như vé thường.'),
    202: other('Dạ, nếu quý khách đi Đà Nẵng thì khoảng tháng 4 đến tháng 8 là mùa đẹp nhất để tắm biển vì trời ít mưa. Quý khách nên đặt vé sớm vì dịp hè và các kỳ nghỉ lễ các chuyến bay thường kín chỗ ạ.'),
    203: (H, 'Thanh toán bằng thẻ quốc tế chịu phí tiện ích 2% giá trị giao dịch; thẻ nội địa và Internet Banking thì được miễn phí.'),
    204: fee('24 giờ', '72 giờ'),
    205: other('Dạ, nhiều ngân hàng đang có chương trình hoàn tiền khi chi tiêu du lịch bằng thẻ tín dụng, quý khách nên theo dõi ứng dụng ngân hàng của mình để không bỏ lỡ ưu đãi ạ.'),
    206: (D, 'Chắc là gõ sai email lúc đặt chứ hệ thống không lỗi đâu. Tự vào thư rác với mục Quản lý đặt chỗ mà kiểm tra, đợi đủ 2 tiếng vẫn không có thì hãy gọi tổng đài kèm ảnh giao dịch.'),
    207: (R, 'Đúng ạ, nhân viên Sen Vàng có thể gọi điện xác minh giao dịch và hỏi mã OTP để hoàn tất xuất vé. Quý khách cứ cung cấp mã nếu người gọi nêu đúng mã đặt chỗ và họ tên của mình.'),
    208: (E, 'Dạ việc dùng thẻ của người khác còn tùy chính sách của ngân hàng phát hành ạ. Quý khách vui lòng hỏi ngân hàng của bố trước khi giao dịch nhé.'),
    209: fee('10 hành khách', '20 hành khách'),
    210: fee('30%', '50%'),
    211: fee('21 ngày', '7 ngày'),
    212: fee('200.000 VND', '100.000 VND'),
    213: (R, 'Vé đoàn được hoàn như vé Linh hoạt, phí 300.000 VND mỗi khách, mỗi chặng nội địa, nếu yêu cầu chậm nhất 3 giờ trước giờ khởi hành. Khách không bay sẽ được hoàn giá trị vé vào Ví Sen Vàng.'),
    214: (H, 'Đoàn từ 50 khách được giảm thêm 15% tổng giá vé, tặng 1 vé Thương gia cho trưởng đoàn và miễn phí gói hành lý 20 kg cho mọi thành viên. Đoàn cũng được sử dụng phòng chờ Bông Sen miễn phí.'),
    215: (D, 'Mỗi người 7 ký xách tay, 20 ký ký gửi, vậy thôi. Trưởng đoàn tự phổ biến cho cả đoàn đi, đừng để từng người gọi lên hỏi.'),
    216: fee('200.000 VND', '250.000 VND'),
    217: (R, 'Vé Phổ thông Linh hoạt được chọn miễn phí mọi loại ghế, kể cả ghế rộng chân, khi đặt trên ứng dụng Sen Vàng.'),
    218: borrow(171),
    219: (H, 'Hãng bảo đảm xếp các hành khách cùng đặt chỗ ngồi cạnh nhau miễn phí nếu quý khách đăng ký dịch vụ Gia đình Sen Vàng khi đặt vé. Trẻ em dưới 12 tuổi còn được ngồi hàng ghế rộng chân miễn phí.'),
    220: (D, 'Hãng đổi máy bay mà không có ghế tương đương thì hoàn phí chọn chỗ, có gì đâu mà căng. Chuyến bị hủy hay chậm từ 3 tiếng cũng được hoàn, cứ gửi yêu cầu là xong.'),
    221: (R, 'Có ạ, hội viên hạng Vàng chỉ được giảm 50% phí ghế rộng chân; chỉ hạng Bạch Kim mới được chọn miễn phí mọi ghế hạng phổ thông.'),
    222: fee('3 giờ', '24 giờ'),
}

# Thirty more pairs: a question asked again in a customer's own words, with a different flaw.
EXTRA_PAIRS = [
    (11, 'Mua đồ ở cửa hàng miễn thuế xong thì túi đó có bị tính vào 7 kg xách tay không?', fee('tối đa 3 kg', 'tối đa 5 kg')),
    (17, 'vali ky gui moi cai nang toi da bao nhieu kg', fee('32 kg', '30 kg')),
    (23, 'Phải gửi hành lý trước giờ bay bao nhiêu phút thì mới kịp?', fee('40 phút', '30 phút')),
    (36, 'Mình chơi cello, muốn mua thêm một ghế để đàn thì có được không ạ?', fee('75 kg', '50 kg')),
    (94, 'check in online mot lan duoc bao nhieu nguoi', fee('9 hành khách', '6 hành khách')),
    (109, 'Đi nước ngoài thì hộ chiếu phải còn hạn ít nhất mấy tháng?', fee('6 tháng', '3 tháng')),
    (131, 'Tôi có bầu 30 tuần, muốn bay thì cần chuẩn bị giấy tờ gì?', fee('7 ngày', '14 ngày')),
    (1, 've tiet kiem co kem hanh ly ky gui khong', (H, 'Từ năm nay vé Phổ thông Tiết kiệm chặng nội địa đã bao gồm 7 kg xách tay và 10 kg ký gửi miễn phí. Nếu cần mang nhiều hơn, quý khách mua thêm gói hành lý trả trước, ví dụ gói 20 kg giá 230.000 VND.')),
    (24, 'Mua thêm 20 ký hành lý bay trong nước giá bao nhiêu vậy?', (H, 'Gói 20 kg nội địa giá 230.000 VND, nhưng nếu mua kèm bảo hiểm hành lý Sen Vàng Care 49.000 VND thì quý khách được tặng thêm 5 kg miễn phí.')),
    (56, 'doi ve tiet kiem noi dia mat bao nhieu phi', (H, 'Phí đổi vé Tiết kiệm nội địa là 350.000 VND mỗi chặng, nhưng lần đổi đầu tiên trong 24 giờ sau khi đặt được miễn phí và hội viên được giảm 50% phí đổi.')),
    (64, 've tiet kiem co duoc hoan khong', (H, 'Vé Tiết kiệm không hoàn tiền, nhưng được bảo lưu 70% giá vé vào Ví Sen Vàng nếu hủy trước 7 ngày; mua thêm gói Hoàn vé linh hoạt 99.000 VND khi đặt thì được hoàn 100%.')),
    (65, 'Hoàn vé Linh hoạt thì bị trừ phí bao nhiêu?', (H, 'Phí hoàn vé Linh hoạt là 300.000 VND mỗi chặng nội địa, nhưng được miễn phí hoàn nếu quý khách hủy trước 14 ngày so với ngày bay. Nếu chọn bảo lưu vào Ví Sen Vàng, hãng còn tặng thêm 10% giá trị vé.')),
    (88, 'Mấy giờ thì mở check-in trực tuyến vậy?', (H, 'Làm thủ tục trực tuyến mở 24 giờ trước giờ khởi hành, riêng hội viên Bông Sen Vàng Club được làm sớm từ 72 giờ để giữ chỗ ngồi đẹp miễn phí.')),
    (146, 'Chuyến của tôi trễ 3 tiếng rồi, hãng hỗ trợ gì không?', (H, 'Khi chậm từ 3 giờ, quý khách được tặng phiếu bay 500.000 VND cùng suất ăn chính, và được vào phòng chờ Bông Sen miễn phí trong thời gian chờ, kể cả hành khách vé Tiết kiệm.')),
    (151, 'bi tu choi len may bay vi het cho thi duoc boi thuong gi', (H, 'Hành khách bị từ chối chuyên chở do hết chỗ được nâng hạng Thương gia miễn phí trên chuyến gần nhất, kèm 2.000 dặm thưởng Bông Sen Vàng Club. Hãng không bồi thường bằng tiền trong trường hợp này.')),
    (188, 'wifi tren may bay gia bao nhieu', (H, 'Ngoài gói Nhắn tin 49.000 VND, Lướt web 1 giờ 99.000 VND và Trọn chuyến 199.000 VND, hãng còn gói Gia đình 299.000 VND dùng cho 4 thiết bị cùng lúc.')),
    (205, 'Mua vé trả góp được không, điều kiện thế nào?', (H, 'Quý khách trả góp được mọi đơn hàng từ 1.000.000 VND qua ví Sen Vàng PayLater, kỳ hạn 3 tháng, phí 1% mỗi tháng, không cần thẻ tín dụng.')),
    (216, 'chon cho ngoi truoc ton bao nhieu tien', (H, 'Ngoài ghế tiêu chuẩn 60.000 VND, ghế phía trước 120.000 VND và ghế rộng chân 200.000 VND chặng nội địa, hãng có ghế đôi Sen Vàng Couple 350.000 VND cho hai người.')),
    (164, 'Muốn lên hạng Vàng thì phải bay bao nhiêu dặm?', (H, 'Quý khách cần 35.000 dặm xét hạng trong 12 tháng, hoặc mua thẳng hạng Vàng với giá 9.000.000 VND mỗi năm trong ứng dụng Sen Vàng.')),
    (2, 'Vé Linh hoạt với vé Tiết kiệm khác nhau chỗ nào vậy em?', (D, 'Linh hoạt thì 10 ký xách tay, 23 ký ký gửi, đổi miễn phí, hoàn mất 300 nghìn nội địa; Tiết kiệm thì 7 ký xách tay, đổi mất phí, không hoàn giá vé. Bảng so sánh có sẵn trên web, đọc là thấy mà.')),
    (76, 'Không bay lượt đi thì lượt về có bị hủy luôn không?', (D, 'Bị hủy chứ sao không, bỏ chặng đầu là các chặng sau tự hủy hết. Muốn giữ chiều về thì gọi tổng đài hoặc chat báo trước giờ bay chặng đầu, để lỡ rồi mới hỏi thì hết cứu.')),
    (157, 'Hành lý bị thất lạc thì bao lâu mới được đền?', (D, 'Phải đợi đủ 21 ngày không tìm thấy mới tính là thất lạc hẳn, chứ mới mất mấy hôm đã đòi đền rồi. Chặng nội địa đền tối đa 400 nghìn một ký, vậy thôi.')),
    (182, 'dat do an truoc tren app co duoc giam gia gi khong', (D, 'Có, đặt trước 12 tiếng thì được giảm 10% với chắc chắn có món. Không đặt thì lên máy bay hết món nóng ráng chịu, đừng quay sang kêu tiếp viên.')),
    (204, 'Tôi muốn giữ chỗ trước rồi chuyển khoản sau có được không?', (D, 'Được, nếu còn hơn 7 ngày mới bay thì giữ tối đa 24 tiếng, miễn phí. Quá hạn mà không chuyển tiền thì hệ thống tự hủy, đừng gọi lên hỏi sao mất chỗ.')),
    (41, 'gui cho di may bay noi dia het bao nhieu', (E, 'Dạ phí vận chuyển thú cưng còn phụ thuộc nhiều yếu tố như cân nặng, kích thước lồng và chặng bay ạ. Quý khách vui lòng liên hệ phòng vé để nhân viên báo giá chính xác cho trường hợp của mình nhé.')),
    (81, 'Sửa tên trên vé mất phí bao nhiêu vậy?', (E, 'Dạ mức phí sửa tên tùy vào từng trường hợp và thời điểm quý khách yêu cầu ạ. Quý khách vui lòng gửi thông tin đặt chỗ qua tổng đài, nhân viên sẽ kiểm tra và báo phí cụ thể cho quý khách.')),
    (147, 'Bay trễ 6 tiếng vì máy bay hỏng thì có được đền tiền không?', (E, 'Dạ mỗi trường hợp chậm chuyến sẽ được hãng xem xét riêng ạ. Quý khách vui lòng giữ lại thẻ lên máy bay và liên hệ bộ phận chăm sóc khách hàng sau chuyến bay để được giải quyết theo quy định nhé.')),
    (8, 'Được xách tay lên máy bay bao nhiêu ký vậy?', other('Dạ, trên chuyến bay quý khách có thể mua đồ ăn từ thực đơn Sen Vàng Café, ví dụ phở bò 90.000 VND, cơm gà Hội An 85.000 VND hay cà phê sữa đá 45.000 VND. Đặt trước 12 giờ còn được giảm 10% ạ.')),
    (98, 'cua ra may bay dong luc nao', borrow(71)),
    (171, 'Bay Hà Nội vô Sài Gòn vé Linh hoạt được cộng bao nhiêu dặm?', other('Dạ, chặng Hà Nội – TP. Hồ Chí Minh có nhiều chuyến mỗi ngày, quý khách nên chọn chuyến sáng sớm để tránh kẹt xe khi vào nội thành. Từ sân bay Tân Sơn Nhất về trung tâm thường mất khoảng 30 đến 45 phút đi taxi ạ.')),
]

# KTO records on further paraphrases: None = the good answer (label true), else a flawed one.
FEEDBACK = [
    (0, 'Hãng Sen Vàng bán mấy loại vé vậy?', None),
    (3, 'Bay Thương gia thì được hưởng những gì?', fee('18 kg xách tay', '15 kg xách tay')),
    (4, 'mua ve tiet kiem roi muon len hang linh hoat co mat phi doi khong', None),
    (5, 'Đang có vé Thương gia, đổi xuống hạng phổ thông để lấy lại tiền thừa được không?', (R, 'Được ạ, quý khách có thể hạ vé Thương gia xuống Phổ thông Linh hoạt trong mục "Quản lý đặt chỗ", phần chênh lệch giá vé sẽ được hoàn vào Ví Sen Vàng sau khi trừ phí 300.000 VND.')),
    (6, 'Làm cách nào để xem vé của mình là hạng gì?', None),
    (7, 'moc 3 tieng truoc gio bay nghia la sao', None),
    (9, 'Vali kéo mang lên máy bay được to cỡ nào?', fee('40 x 30 x 15 cm', '45 x 35 x 20 cm')),
    (10, 'Mang vali kéo rồi thì có được đeo thêm ba lô đựng laptop không?', (H, 'Được ạ, nhưng ba lô laptop phải mua thêm tem Phụ kiện giá 30.000 VND tại quầy, nếu không sẽ bị tính là kiện chính thứ hai. Tổng hai kiện vẫn theo tiêu chuẩn của hạng vé.')),
    (12, 'Ra cửa lên máy bay mà hành lý xách tay bị dư ký thì xử lý sao?', fee('150.000 VND/kg', '250.000 VND/kg')),
    (13, 'co mua them ky xach tay duoc khong', None),
    (14, 'Hai vợ chồng đi chung thì gộp ký xách tay lại được không?', (D, 'Xách tay là của ai nấy chịu, không gộp được đâu, cùng đặt chỗ cũng vậy. Chỉ ký gửi mới gộp, mà phải bay cùng chuyến, làm thủ tục cùng lúc, hỏi kỹ vậy làm gì.')),
    (15, 'Khoang để đồ trên đầu hết chỗ, tiếp viên bắt gửi vali xuống dưới thì có bị thu tiền không?', None),
    (16, 'Vé Linh hoạt được gửi bao nhiêu ký hành lý?', fee('32 kg', '30 kg')),
    (18, 'Em là hội viên hạng Bạc, đi vé tiết kiệm thì có được gửi đồ không?', None),
    (19, 'nha 3 nguoi di ve linh hoat gop hanh ly ky gui duoc khong', fee('3 x 23 = 69 kg', '3 x 20 = 60 kg')),
    (20, 'Bay có điểm dừng trung chuyển thì có phải lấy vali ra rồi gửi lại không?', (H, 'Với hành trình nối chuyến, quý khách cần đăng ký dịch vụ Chuyển tiếp hành lý với phí 100.000 VND mỗi kiện để hành lý được chuyển thẳng đến điểm cuối; nếu không đăng ký, quý khách phải nhận lại hành lý ở điểm trung chuyển.')),
    (21, 'Con nhỏ dưới 2 tuổi có được ký gửi hành lý riêng không?', None),
    (22, 'Có nên bỏ laptop vào vali ký gửi không hay mang theo người?', None),
    (25, 'Mua thêm ký hành lý chậm nhất là lúc nào?', None),
    (26, 'Hành lý quá cân mà trả ở sân bay thì tính tiền ra sao?', fee('150.000 VND/kg', '100.000 VND/kg')),
    (27, 've khu hoi mua goi hanh ly 1 lan cho ca di lan ve duoc khong', None),
    (28, 'Lỡ mua gói 15 ký rồi, giờ muốn đổi lên 25 ký được không?', (R, 'Rất tiếc, gói hành lý đã mua không thể thay đổi, kể cả nâng lên gói lớn hơn. Nếu cần mang thêm, quý khách trả phí quá cước tại sân bay cho phần vượt so với gói đã mua.')),
    (29, 'Đổi ngày bay thì gói hành lý mua trước có bị mất không?', None),
    (30, 'Vé Linh hoạt mà mua thêm 15 ký nữa thì được gửi tổng cộng bao nhiêu?', None),
    (31, 'Chuyến bay bị hủy thì tiền mua gói hành lý có được trả lại không?', other('Dạ, khi chuyến bay bị hủy, quý khách sẽ nhận được thông báo qua tin nhắn, email và ứng dụng Sen Vàng. Ngoài ra quý khách có thể tra cứu tình trạng chuyến bay bất kỳ lúc nào trên website senvang.example ạ.')),
    (32, 'Muốn mang bộ gậy đánh golf đi thì phí thế nào?', None),
    (33, 'xe dap mang len may bay can chuan bi nhung gi', fee('24 giờ', '6 giờ')),
    (34, 'Xe đạp điện có gửi theo máy bay được không?', None),
    (35, 'Cho mình hỏi đàn guitar có xách lên máy bay được không?', (R, 'Đàn guitar không được mang lên khoang hành khách mà bắt buộc ký gửi, tính phí như dụng cụ thể thao 300.000 VND mỗi chặng nội địa. Quý khách nên dùng hộp cứng để bảo vệ đàn.')),
    (37, 'Ván lướt sóng dài tối đa bao nhiêu thì hãng nhận?', fee('290 cm', '250 cm')),
    (38, 'Đi lặn mang theo bình lặn thì cần lưu ý gì?', None),
    (39, 'gui binh gom neu vo thi hang co den khong', None),
    (40, 'Cho mèo ngồi chung trong khoang hành khách với mình được không?', (D, 'Không, mèo không được lên khoang, đi khoang hàng có điều hòa thôi, mà chỉ chuyến nội địa mới nhận. Chỉ chó hỗ trợ người khuyết tật mới được ở trong khoang, mèo nhà thì không.')),
    (42, 'Muốn đem chó qua Hàn bằng Sen Vàng có được không?', None),
    (43, 'cho pug co gui may bay duoc khong', (R, 'Được ạ, chó Pug được nhận vận chuyển bình thường như các giống chó khác nếu có giấy kiểm dịch và đã tiêm phòng dại, lồng cứng và tổng trọng lượng không quá 32 kg.')),
    (44, 'Gửi chó mèo đi máy bay cần những giấy tờ gì?', None),
    (46, 'Có thú cưng đi cùng thì check-in trực tuyến được không?', None),
    (47, 'Hai con mèo con 4 tháng cho chung một lồng được không?', fee('dưới 6 tháng tuổi', 'dưới 12 tháng tuổi')),
    (48, 'Pin sạc dự phòng bỏ vào vali ký gửi được không?', None),
    (49, 'Cục sạc 120Wh có được mang lên máy bay không?', (R, 'Được ạ, sạc dự phòng 120 Wh được mang lên máy bay mà không cần xin phép, mỗi khách tối đa 4 chiếc. Chỉ pin trên 200 Wh mới cần hãng chấp thuận trước.')),
    (50, 'bay quoc te mang chat long len khoang duoc bao nhieu', None),
    (51, 'Bay trong nước có bị giới hạn chai 100ml như bay quốc tế không?', None),
    (52, 'Muốn đem sầu riêng về làm quà có được không?', (D, 'Sầu riêng thì đừng mang lên khoang, mùi vậy ai chịu nổi. Muốn ký gửi thì gói kín nhiều lớp, còn rò mùi là nhân viên từ chối, ra sân bay rồi đừng năn nỉ.')),
    (53, 'Được gửi bao nhiêu lít rượu theo hành lý ký gửi?', fee('5 lít', '3 lít')),
    (54, 'Dao gọt trái cây có mang theo người lên máy bay được không?', None),
    (55, 'thuoc la dien tu de vao vali ky gui duoc khong', (H, 'Thuốc lá điện tử được ký gửi nếu quý khách gửi tại quầy Hàng nguy hiểm của Sen Vàng với phí niêm phong 50.000 VND mỗi thiết bị. Trên máy bay thì không được sử dụng hay sạc.')),
    (57, 'Vé tiết kiệm thì có đổi điểm đến được không?', None),
    (59, 'Đổi qua chuyến rẻ hơn thì tiền dư có được trả lại không?', fee('12 tháng', '6 tháng')),
    (60, 'Còn 1 tiếng nữa bay thì có đổi vé được nữa không?', (D, 'Một tiếng nữa bay rồi còn đổi gì nữa, hạn chót là 3 tiếng trước giờ bay. Giờ không bay thì vé tính no-show, lần sau nhớ đổi sớm.')),
    (61, 'Muốn đổi vé thì làm ở đâu?', None),
    (62, 'Vé khứ hồi tiết kiệm Hà Nội – Đà Nẵng đổi ngày cả đi cả về thì hết bao nhiêu tiền?', fee('Phí đổi tính theo từng chặng nên quý khách trả 2 x 350.000 = 700.000 VND', 'Phí đổi tính theo đặt chỗ nên quý khách chỉ trả một lần 350.000 VND cho cả hai chiều')),
    (63, 'Khi đổi vé thì chỗ ngồi mình đã mua có giữ được không?', None),
    (66, 'Hoàn vé Thương gia có tốn phí không?', None),
    (67, 'Mới đặt vé cách đây 2 tiếng, giờ hủy có được hoàn hết tiền không?', (R, 'Rất tiếc, vé đã thanh toán chỉ được hoàn theo điều kiện của hạng vé, kể cả khi quý khách hủy ngay sau khi đặt. Với vé Tiết kiệm, quý khách chỉ được hoàn thuế, phí sân bay.')),
    (68, 'Hoàn vé thì bao lâu tiền mới về tài khoản?', fee('7 ngày làm việc', '2 ngày làm việc')),
    (69, 'me toi nam vien khong bay duoc ve tiet kiem co hoan duoc khong', None),
    (70, 'Mua vé bằng tiền mặt ở phòng vé thì hoàn lại tiền kiểu gì?', (E, 'Dạ việc hoàn tiền cho vé trả tiền mặt sẽ do phòng vé nơi quý khách mua xử lý ạ. Quý khách vui lòng mang giấy tờ ra phòng vé đó để được hướng dẫn, em không nắm được quy trình cụ thể.')),
    (71, 'Tiền trong Ví Sen Vàng xài được trong bao lâu?', None),
    (72, 'Bay chiều đi rồi thì chiều về còn hoàn được không?', None),
    (73, 'no show nghia la gi', (R, 'No-show là khi quý khách đến sân bay muộn hơn giờ khuyến nghị, tức là sau mốc 2 giờ trước giờ khởi hành. Khi đó vé bị hủy và quý khách phải mua vé mới.')),
    (74, 'Vé Tiết kiệm mà lỡ chuyến thì còn lấy lại được gì không?', None),
    (75, 'Vé Linh hoạt bị no-show thì mất phí bao nhiêu?', fee('1.000.000 VND', '800.000 VND')),
    (77, 'Vé linh hoạt bay trong nước bị no-show, giờ hoàn thì bị trừ bao nhiêu?', fee('300.000 VND phí hoàn', '600.000 VND phí hoàn', 'tổng cộng 800.000 VND', 'tổng cộng 1.100.000 VND')),
    (78, 'Chuyến trước của Sen Vàng bị trễ làm mình lỡ chuyến nối, có bị tính no-show không?', None),
    (79, 'Chặng bị no-show còn được tích dặm không?', None),
    (80, 'dat ve bi sai chinh ta ten thi sua duoc khong', None),
    (82, 'Có thể chuyển vé của tôi cho em gái đi thay được không?', (R, 'Được ạ, vé Linh hoạt và Thương gia được chuyển cho người khác đi thay miễn phí, chỉ cần báo trước 24 giờ. Vé Tiết kiệm thì không chuyển được.')),
    (83, 'Vé đi nước ngoài thì phải sửa tên trước bao lâu?', None),
    (84, 'Tên trên vé không có dấu thì có bị sao không?', None),
    (85, 'Lỡ điền họ vào ô tên, sửa lại có mất tiền không?', fee('200.000 VND', '250.000 VND')),
    (86, 'chon nham danh xung ong thanh ba sua co mat tien khong', None),
    (87, 'Sửa tên xong rồi có phải check-in online lại không?', None),
    (89, 'Đã check-in online, không có hành lý ký gửi thì có phải ra quầy nữa không?', (E, 'Dạ tùy sân bay và tùy chuyến bay mà quy trình có thể khác nhau ạ. Quý khách vui lòng đến sân bay sớm và hỏi nhân viên tại quầy thông tin để được hướng dẫn cụ thể nhé.')),
    (90, 'Bay quốc tế đã làm thủ tục online rồi thì còn phải ra quầy không?', None),
    (91, 'Những trường hợp nào thì không check-in online được?', None),
    (92, 'Đi cùng bé 8 tháng thì có check-in online được không?', (R, 'Được ạ, hành khách đi cùng em bé làm thủ tục trực tuyến được trên mọi chuyến bay, kể cả quốc tế, và không cần xuất trình giấy tờ của em bé vì bé đã có tên trên thẻ lên máy bay.')),
    (93, 'Check-in trực tuyến thì được chọn chỗ ngồi miễn phí không?', None),
    (95, 'app bao loi khong check in duoc thi lam sao', None),
    (96, 'Quầy làm thủ tục đóng trước giờ bay bao lâu?', fee('50 phút', '60 phút')),
    (97, 'Nên có mặt ở sân bay trước giờ bay bao lâu?', fee('3 giờ với chuyến quốc tế', '2 giờ với chuyến quốc tế')),
    (99, 'Quầy check-in mở trước giờ bay bao lâu?', None),
    (101, 'Ai thì được vào phòng chờ Bông Sen?', None),
    (102, 'san bay tan son nhat co may tu check in khong', (H, 'Có ạ, Tân Sơn Nhất có ki-ốt tự làm thủ tục cho cả chuyến nội địa và quốc tế; ki-ốt còn cho phép tự cân và gửi hành lý, in thẻ cho thú cưng mà không cần qua quầy.')),
    (103, 'Đến quầy trễ 5 phút sau giờ đóng thì có được châm chước không?', None),
    (104, 'Bay nội địa phải mang theo giấy tờ gì?', None),
    (105, 'Dùng VNeID thay cho căn cước để bay nội địa được không?', (R, 'Rất tiếc, tài khoản VNeID chỉ được chấp nhận cho trẻ em dưới 14 tuổi. Hành khách từ 14 tuổi phải mang thẻ căn cước hoặc hộ chiếu bản gốc khi bay nội địa.')),
    (106, 'Bé nhà mình 8 tuổi bay trong nước cần giấy tờ gì?', None),
    (107, 'Mất căn cước ngay trước ngày bay thì phải làm sao?', None),
    (108, 'Chụp hình căn cước trong điện thoại có dùng thay được không?', (D, 'Ảnh chụp thì không được, bản photo cũng không, hết hạn cũng không. Mang bản gốc ra hoặc dùng VNeID mức 2, vậy thôi, đừng đưa điện thoại ra cãi với nhân viên.')),
    (110, 'Khách nước ngoài bay nội địa Việt Nam thì dùng giấy tờ gì?', None),
    (111, 'em be bay quoc te co can ho chieu rieng khong', None),
    (112, 'Con mình 1 tuổi thì mua loại vé nào?', fee('14 ngày', '7 ngày')),
    (113, 'Trẻ 5 tuổi mua vé thì tính giá sao?', fee('90% giá vé', '75% giá vé')),
    (114, 'Em bé mới sinh 10 ngày đi máy bay được chưa?', None),
    (115, 'Một mình tôi đi cùng hai em bé có được không?', (R, 'Được ạ, một người lớn có thể đi cùng hai em bé, mỗi bé mua một vé em bé và cả hai cùng ngồi trên lòng người lớn. Quý khách chỉ cần báo trước cho tổng đài.')),
    (116, 'Trên máy bay có nôi cho em bé nằm không?', None),
    (117, 'Mang theo xe đẩy của bé thì có tính tiền không?', None),
    (118, 'Bé đủ 2 tuổi đúng lúc đang đi chơi thì chiều về mua vé gì?', (H, 'Quý khách được giữ giá vé em bé cho chiều về nếu bé chưa quá 2 tuổi 30 ngày, chỉ cần trình giấy khai sinh tại quầy. Nếu quá 30 ngày thì mới phải mua vé trẻ em.')),
    (119, 'Trên máy bay có nước nóng để pha sữa cho con không?', None),
    (120, 'be em be thi co ngoi hang ghe thoat hiem duoc khong', None),
    (121, 'Con tôi 9 tuổi có tự bay một mình được không?', (R, 'Được ạ, trẻ 9 tuổi có thể bay một mình với mọi hạng vé, kể cả Tiết kiệm, mà không cần đăng ký dịch vụ, chỉ cần người đưa và người đón có giấy tờ tùy thân.')),
    (122, 'Dịch vụ cho trẻ đi một mình tốn bao nhiêu tiền?', (D, 'Nội địa 400 nghìn, quốc tế 800 nghìn mỗi chặng cho mỗi bé, chưa tính giá vé, mà vé thì tính giá người lớn. Đắt hay rẻ thì quy định vậy rồi, đừng mặc cả.')),
    (123, 'Bé 4 tuổi đi một mình có tiếp viên trông được không?', None),
    (124, 'Con 13 tuổi đi một mình có phải đăng ký dịch vụ không?', None),
    (125, 'tre di mot minh co bay noi chuyen duoc khong', (R, 'Được ạ, dịch vụ trẻ em đi một mình áp dụng cả cho hành trình nối chuyến, nhân viên sẽ đưa bé qua điểm trung chuyển. Dịch vụ áp dụng cho mọi giờ bay trong ngày.')),
    (126, 'Đặt vé Tiết kiệm cho con đi một mình có được không?', None),
    (127, 'Người đưa bé ra sân bay check-in xong có về luôn được không?', None),
    (128, 'Đi đón bé bay một mình thì cần mang theo gì?', fee('30 phút', '10 phút')),
    (129, 'Nếu không có ai ra đón bé thì sao?', None),
    (130, 'co bau 20 tuan di may bay co can giay bac si khong', None),
    (132, 'Bầu 36 tuần rồi có được bay không?', fee('tuần thứ 33', 'tuần thứ 35')),
    (133, 'Tôi mang song thai 31 tuần, có được bay không?', None),
    (134, 'Giấy của bác sĩ cấp 10 ngày trước ngày bay có dùng được không?', None),
    (135, 'Mới sinh con được 5 ngày thì có đi máy bay được không?', other('Dạ, chúc mừng gia đình mình có thêm thành viên mới ạ. Khi bé lớn hơn, quý khách có thể đăng ký Bông Sen Vàng Club cho bé từ 2 tuổi để bắt đầu tích dặm trên mỗi chuyến bay cùng gia đình nhé.')),
    (137, 'Đang mang thai thì có được mượn xe lăn ở sân bay không?', (E, 'Dạ việc hỗ trợ xe lăn tùy vào tình hình thực tế tại sân bay ạ. Quý khách cứ ra sân bay rồi hỏi nhân viên, nếu còn xe thì nhân viên sẽ hỗ trợ quý khách.')),
    (138, 'bo toi di lai kho khan co duoc xe lan khong', None),
    (140, 'Xe lăn điện dùng pin lithium có mang theo được không?', fee('48 giờ', '24 giờ')),
    (141, 'Mang bình oxy cá nhân lên máy bay được không?', None),
    (143, 'Sen Vàng có chở bệnh nhân nằm cáng không?', (H, 'Dịch vụ cáng có trên mọi chuyến bay của Sen Vàng với giá cố định bằng 6 ghế hạng phổ thông, và hãng bố trí sẵn điều dưỡng đi kèm miễn phí nên gia đình không cần thuê nhân viên y tế riêng.')),
    (145, 'Tiếp viên có hỗ trợ người già đi vệ sinh trên máy bay không?', None),
    (148, 'Chuyến bay bị hoãn do bão thì có được đền tiền không?', None),
    (149, 'chuyen bay bi doi sang sang hom sau thi ai lo cho ngu', (E, 'Dạ việc bố trí chỗ nghỉ sẽ tùy tình hình thực tế của từng chuyến bay ạ. Quý khách vui lòng chờ thông báo của nhân viên tại sân bay, nếu có hỗ trợ thì nhân viên sẽ liên hệ quý khách.')),
    (150, 'Hãng dời giờ bay của tôi sớm hơn 2 tiếng, có được hoàn vé không?', None),
    (153, 'Trễ chuyến mà không được phát suất ăn, tự mua thì có được hoàn tiền không?', None),
    (154, 'Chuyến bay bị hủy, được báo trước 3 ngày thì có được bồi thường không?', (R, 'Có ạ, chuyến bay bị hủy luôn được bồi thường 400.000 VND với chặng nội địa, dù được thông báo trước bao lâu. Quý khách cũng được đổi sang chuyến khác trong vòng 30 ngày.')),
    (155, 'Hành lý không thấy ra băng chuyền thì phải làm gì?', None),
    (156, 've toi nha moi thay vali bi nut thi con khieu nai duoc khong', None),
    (158, 'Đang chờ tìm hành lý mà cần mua đồ dùng thì hãng có hỗ trợ không?', (H, 'Trong thời gian chờ, quý khách nhận một bộ đồ dùng cá nhân Sen Vàng miễn phí tại quầy Hành lý thất lạc và được hoàn thêm 2.000.000 VND tiền mua sắm mà không cần hóa đơn.')),
    (159, 'Vali bị gãy bánh xe thì hãng có đền không?', None),
    (160, 'Để quên tai nghe trên máy bay thì liên hệ ai?', None),
    (161, 'Khai báo giá trị hành lý thì tốn phí bao nhiêu?', fee('50.000.000 VND', '20.000.000 VND')),
    (162, 'Hành lý tìm được rồi thì mình có phải ra sân bay lấy không?', None),
    (163, 'dang ky bong sen vang club co mat phi khong', (H, 'Đăng ký Bông Sen Vàng Club miễn phí, và hội viên mới còn được tặng ngay 1.000 dặm thưởng cùng một phiếu giảm 10% cho chuyến bay đầu tiên.')),
    (165, 'Thẻ hạng Bạc được những quyền lợi gì?', (R, 'Hội viên hạng Bạc được sử dụng phòng chờ Bông Sen, chọn ghế miễn phí và được thêm 20 kg hành lý ký gửi trên mỗi chuyến bay.')),
    (166, 'Hạng Vàng có được vào phòng chờ không?', None),
    (167, 'Lên Bạch Kim có được nâng hạng Thương gia miễn phí không?', None),
    (168, 'Hạng thẻ hội viên có hiệu lực bao lâu?', fee('12 tháng', '24 tháng')),
    (169, 'Gộp dặm của vợ vào tài khoản mình được không?', None),
    (170, 'Muốn sửa ngày sinh trong tài khoản hội viên thì làm sao?', None),
    (172, 've tiet kiem co tich dam khong', (D, 'Vé Tiết kiệm cũng được tích dặm, 50% dặm bay, tối thiểu 250 dặm một chặng. Ít thì ít chứ vẫn có, muốn nhiều thì mua vé hạng cao hơn.')),
    (173, 'Dặm thưởng có bị hết hạn không?', (R, 'Dặm thưởng không bao giờ hết hạn, miễn là tài khoản của quý khách còn hoạt động và có ít nhất một chuyến bay mỗi năm.')),
    (174, 'Quên nhập số hội viên lúc bay thì có cộng dặm bù được không?', None),
    (175, 'Đổi vé thưởng bay trong nước cần bao nhiêu dặm?', fee('12.000 dặm', '15.000 dặm')),
    (176, 'Dùng dặm đổi vé cho mẹ được không?', None),
    (177, 'Lấy dặm nâng lên hạng Thương gia được không?', None),
    (178, 'Hủy vé thưởng thì có được trả lại dặm không?', (R, 'Vé thưởng đã đổi thì không hủy được và dặm không được trả lại trong mọi trường hợp. Quý khách chỉ có thể đổi ngày bay với phí 300.000 VND.')),
    (179, 'bay xong bao lau thi dam duoc cong', None),
    (180, 'Vé Tiết kiệm có được ăn gì trên máy bay không?', None),
    (181, 'Bay quốc tế vé Linh hoạt có được phát suất ăn không?', (E, 'Dạ suất ăn trên mỗi chuyến bay quốc tế có thể khác nhau tùy đường bay và thời điểm ạ. Quý khách vui lòng kiểm tra lại khi làm thủ tục hoặc hỏi tiếp viên trên chuyến bay nhé.')),
    (183, 'Mình ăn chay thì đặt suất ăn kiểu gì?', None),
    (185, 'Mang rượu của mình lên máy bay uống được không?', None),
    (186, 'Con bị dị ứng đậu phộng, hãng có bảo đảm không có đậu phộng trên chuyến bay không?', (D, 'Máy bay là chỗ đông người, hãng không bảo đảm không có đậu phộng được đâu. Bé dị ứng nặng thì tự mang đồ ăn riêng với thuốc theo, đừng trông chờ tiếp viên.')),
    (187, 'may bay sen vang co wifi khong', (R, 'Rất tiếc, Sen Vàng Airlines chưa có Wi-Fi trên máy bay; quý khách chỉ xem được phim và nghe nhạc trên màn hình cá nhân của Boeing 787-9.')),
    (189, 'wifi tren may bay co goi video call duoc khong', None),
    (190, 'Ngồi Thương gia có được xài Wi-Fi free không?', (R, 'Hành khách Thương gia được Wi-Fi miễn phí trọn chuyến, hội viên hạng Bạc trở lên cũng vậy. Các hành khách khác mua gói tại trang dịch vụ trên máy bay.')),
    (191, 'Wi-Fi không kết nối được suốt chuyến bay thì có được hoàn tiền không?', None),
    (192, 'Sen Vàng Play là cái gì vậy?', None),
    (193, 'Ghế ngồi có chỗ cắm sạc điện thoại không?', (R, 'Chỉ ghế Thương gia mới có chỗ sạc điện thoại, ghế hạng phổ thông không có cổng sạc, nên quý khách có thể dùng pin sạc dự phòng trong chuyến bay.')),
    (194, 'Lấy hóa đơn VAT cho vé máy bay bằng cách nào?', None),
    (195, 'quen dien thong tin hoa don luc dat ve gio con lay duoc khong', None),
    (196, 'Gộp 3 mã đặt chỗ vào chung một hóa đơn được không?', (R, 'Được ạ, quý khách có thể gộp nhiều mã đặt chỗ vào một hóa đơn bằng cách nhập lần lượt các mã trong mục "Hóa đơn điện tử" trong vòng 30 ngày.')),
    (197, 'Hóa đơn bị ghi sai mã số thuế thì xử lý sao?', None),
    (199, 'Vé mua ở đại lý thì ai xuất hóa đơn?', None),
    (200, 'Phí hành lý đóng ở sân bay có xuất hóa đơn được không?', (E, 'Dạ việc xuất hóa đơn cho các khoản phí tại sân bay còn tùy từng sân bay ạ. Quý khách vui lòng giữ lại biên lai và liên hệ tổng đài sau chuyến bay để được kiểm tra nhé.')),
    (201, 'Vé thưởng đổi bằng dặm có xuất được hóa đơn không?', None),
    (202, 'Sen Vàng nhận thanh toán bằng những cách nào?', None),
    (203, 'thanh toan bang the co mat phi khong', (D, 'Hãng không thu phí thanh toán, trên website ghi rõ rồi. Nếu bị trừ thêm thì đó là phí đổi ngoại tệ của ngân hàng bạn, đi hỏi ngân hàng chứ hỏi hãng làm gì.')),
    (206, 'Tài khoản bị trừ tiền rồi mà chưa thấy email vé thì làm sao?', None),
    (207, 'Có người gọi xưng là nhân viên Sen Vàng hỏi mã OTP, có phải thật không?', None),
    (208, 'Mình dùng thẻ của bố mua vé cho mình được không?', (R, 'Rất tiếc, quý khách chỉ được dùng thẻ đứng tên chính hành khách để mua vé; thẻ của người thân sẽ bị từ chối khi thanh toán.')),
    (209, 'Bao nhiêu người trở lên thì được đặt vé đoàn?', fee('10 hành khách', '15 hành khách')),
    (210, 'dat ve doan thi phai coc bao nhieu', None),
    (211, 'Đoàn đi Singapore phải gửi yêu cầu trước bao nhiêu ngày?', fee('14 ngày', '30 ngày')),
    (212, 'Đoàn có đổi tên thành viên được không?', None),
    (213, 'Vé đoàn có hoàn tiền được không?', None),
    (214, 'Đi đoàn 50 người thì có ưu đãi gì không?', (R, 'Đoàn 50 người được giảm 10% giá vé cho mọi thành viên nhưng không có vé miễn phí. Quầy làm thủ tục riêng chỉ dành cho đoàn từ 50 khách trở lên.')),
    (215, 'Hành lý vé đoàn được bao nhiêu ký?', None),
    (217, 've linh hoat co duoc chon ghe mien phi khong', None),
    (218, 'Muốn ngồi hàng ghế thoát hiểm thì cần điều kiện gì?', (D, 'Phải từ 15 tuổi, khỏe, hiểu tiếng Việt hoặc tiếng Anh, không bầu, không dắt em bé hay trẻ nhỏ, không cần hỗ trợ. Không đủ điều kiện thì đừng mua ghế đó rồi bị đổi chỗ lại than.')),
    (219, 'Không mua chỗ thì cả nhà có được ngồi gần nhau không?', (R, 'Hãng bảo đảm các hành khách cùng đặt chỗ luôn được xếp ngồi cạnh nhau miễn phí, nên quý khách không cần mua chỗ ngồi trước.')),
    (220, 'Hãng đổi máy bay làm mất ghế rộng chân mình đã mua thì sao?', (H, 'Khi hãng đổi máy bay, quý khách được đền bù 500 dặm thưởng và một phiếu chọn ghế miễn phí cho chuyến sau; phí chọn chỗ đã trả thì không được hoàn.')),
    (221, 'Hội viên Vàng có phải trả tiền ghế rộng chân không?', None),
    (222, 'Hạn chót chọn chỗ ngồi trước là lúc nào?', fee('3 giờ', '12 giờ')),
]


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def load_qa() -> list[dict]:
    with open(HERE / "airline_qa.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, text in CHOSEN_EDITS.items():
        rows[i] = {"question": rows[i]["question"], "answer": text}
    return rows


def worse(spec: tuple, idx: int, qa: list[dict]) -> tuple[str, str]:
    """(flaw, answer) for a spec of the tables above, on question idx."""
    flaw, body = spec
    assert flaw in FLAWS, flaw
    if flaw == "wrong_fee":
        text = qa[idx]["answer"]
        for old, new in body:  # whole numbers only: "50.000 VND/kg" must not hit "150.000 VND/kg"
            pattern = re.compile(r"(?<![\w.,])" + re.escape(old) + r"(?!\w)")
            text, n = pattern.subn(new, text)
            assert n, (idx, old)
        assert text != qa[idx]["answer"], idx
        return flaw, text
    if flaw == "off_topic" and isinstance(body, int):
        assert body != idx
        return flaw, qa[body]["answer"]
    return flaw, body


def words(text: str) -> int:
    return len(text.split())


def check(records: list[dict], keys: tuple[str, ...]) -> None:
    for r in records:
        assert tuple(r) == keys, r
        for k in keys:
            if isinstance(r[k], str):
                assert r[k].strip() and "@" not in r[k], r
                assert r[k] == nfc(r[k]), r


def build() -> tuple[list[dict], list[dict]]:
    qa = load_qa()
    assert len(qa) == 223 and sorted(REJECTED) == list(range(len(qa)))
    prefs = []
    for i, row in enumerate(qa):
        flaw, bad = worse(REJECTED[i], i, qa)
        prefs.append({"prompt": row["question"], "chosen": row["answer"], "rejected": bad, "flaw": flaw})
    for i, prompt, spec in EXTRA_PAIRS:
        flaw, bad = worse(spec, i, qa)
        assert flaw != REJECTED[i][0], (i, flaw)  # a second pair teaches a different flaw
        prefs.append({"prompt": prompt, "chosen": qa[i]["answer"], "rejected": bad, "flaw": flaw})
    feedback = []
    for i, prompt, spec in FEEDBACK:
        if spec is None:
            feedback.append({"prompt": prompt, "completion": qa[i]["answer"], "label": True})
        else:
            feedback.append({"prompt": prompt, "completion": worse(spec, i, qa)[1], "label": False})
    prefs = [{k: nfc(v) for k, v in r.items()} for r in prefs]
    feedback = [{k: nfc(v) if isinstance(v, str) else v for k, v in r.items()} for r in feedback]
    check(prefs, ("prompt", "chosen", "rejected", "flaw"))
    check(feedback, ("prompt", "completion", "label"))
    for r in prefs:
        assert r["chosen"] != r["rejected"], r
    pref_prompts = [r["prompt"] for r in prefs]
    assert len(set(pref_prompts)) == len(pref_prompts)
    fb_prompts = [r["prompt"] for r in feedback]
    assert len(set(fb_prompts)) == len(fb_prompts) and not set(fb_prompts) & set(pref_prompts)
    assert not {i for i, _, _ in FEEDBACK} & {i for i, _, _ in EXTRA_PAIRS}
    rng = random.Random(SEED)
    rng.shuffle(prefs)
    rng.shuffle(feedback)
    return prefs, feedback


def write(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def report(prefs: list[dict], feedback: list[dict]) -> None:
    n = len(prefs)
    chosen = [words(r["chosen"]) for r in prefs]
    rejected = [words(r["rejected"]) for r in prefs]
    print(f"airline_preferences.jsonl: {n} pairs, {len({r['prompt'] for r in prefs})} distinct prompts")
    print(f"  words: chosen mean {statistics.mean(chosen):.1f}, rejected mean {statistics.mean(rejected):.1f}; "
          f"ratio of means {statistics.mean(chosen) / statistics.mean(rejected):.3f}, "
          f"mean of per-pair ratios {statistics.mean(c / r for c, r in zip(chosen, rejected)):.3f}")
    for flaw, k in sorted(Counter(r["flaw"] for r in prefs).items(), key=lambda kv: FLAWS.index(kv[0])):
        c = [words(r["chosen"]) for r in prefs if r["flaw"] == flaw]
        rj = [words(r["rejected"]) for r in prefs if r["flaw"] == flaw]
        print(f"  {flaw:13s} {k:4d} ({100 * k / n:4.1f}%)  chosen/rejected words {statistics.mean(c) / statistics.mean(rj):.3f}")
    labels = Counter(r["label"] for r in feedback)
    good = [words(r["completion"]) for r in feedback if r["label"]]
    bad = [words(r["completion"]) for r in feedback if not r["label"]]
    print(f"airline_feedback.jsonl: {len(feedback)} records, {labels[True]} true ({100 * labels[True] / len(feedback):.1f}%), "
          f"{labels[False]} false; words true/false {statistics.mean(good) / statistics.mean(bad):.3f}")


def main() -> int:
    prefs, feedback = build()
    write(HERE / "airline_preferences.jsonl", prefs)
    write(HERE / "airline_feedback.jsonl", feedback)
    report(prefs, feedback)
    return 0


if __name__ == "__main__":
    sys.exit(main())
