"""Build the Sen Vàng Airlines extractive QA set (SQuAD v2 style) over the policy documents.

    python examples/data/make_extractive.py

Reads the Markdown files in `airline_policies/` next to this file and writes
`airline_extractive.jsonl`, one record per question:

    {"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}

How the data is made: nothing is sampled from a model. The questions below are hand-written, in
the words a customer would use, and each answer is a short span copied from the document. The
contexts are cut from the documents, verbatim, at their `## ` headings: one section (with its
`### ` subsections) is one context; a section shorter than 300 characters is joined with the
sections that follow it (the document's title and introduction with the first section), so every
context is 300 to 1500 characters. About 15% of the questions cannot be answered from their context
(SQuAD v2 "no answer"): they are plausible for that passage, often answered elsewhere in the same
document, and have empty `answers`.

Each entry of QUESTIONS is

    (document file, section heading, question, answer text or None[, occurrence])

- the section heading names the context: any heading (`#`, `##` or `###`, written without the
  hashes) inside it; the document's `# ` title names its first context;
- the answer text is copied exactly from the document; None marks a question with no answer in
  that context;
- occurrence (0-based) says which occurrence of the answer text in the context is meant, and is
  required when the text occurs more than once there (as whole words: "50.000 VND/kg" inside
  "150.000 VND/kg" does not count, and an answer may not start or end inside a word).

Every answer is checked: it must occur verbatim in its context at the start offset written out
(a Python str index into `context`), or the script exits non-zero naming the question. The output
is the same on every run (questions in the order below, ids `<title>-NN`).
"""
from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE / "airline_policies"
OUT = HERE / "airline_extractive.jsonl"
MIN_CONTEXT, MAX_CONTEXT = 300, 1500
MAX_ANSWER_WORDS = 12

QUESTIONS = [
    # bong-sen-vang-club.md
    ("bong-sen-vang-club.md", "Đăng ký", "Con tôi mấy tuổi thì được đăng ký làm hội viên Bông Sen Vàng Club?", "từ 2 tuổi trở lên"),
    ("bong-sen-vang-club.md", "Đăng ký", "Đăng ký hội viên Bông Sen Vàng Club có mất phí không?", "Miễn phí"),
    ("bong-sen-vang-club.md", "Đăng ký", "Khi tạo tài khoản hội viên, tôi chỉ cần cung cấp những thông tin gì?", "email và số điện thoại"),
    ("bong-sen-vang-club.md", "Đăng ký", "Bé nhà tôi mới 12 tuổi thì ai phải đứng ra đăng ký tài khoản cho bé?", "cha, mẹ hoặc người giám hộ"),
    ("bong-sen-vang-club.md", "Các hạng thẻ và điều kiện xét hạng", "Tôi cần bay bao nhiêu chặng để lên hạng Vàng?", "40 chặng"),
    ("bong-sen-vang-club.md", "Các hạng thẻ và điều kiện xét hạng", "Muốn đạt thẻ Bạch Kim thì phải có bao nhiêu dặm xét hạng?", "70.000"),
    ("bong-sen-vang-club.md", "Các hạng thẻ và điều kiện xét hạng", "Sau khi lên hạng, thẻ mới của tôi có hiệu lực trong bao lâu?", "12 tháng", 1),
    ("bong-sen-vang-club.md", "Các hạng thẻ và điều kiện xét hạng", "Hết kỳ mà tôi không đủ điều kiện giữ hạng thì thẻ sẽ ra sao?", "hạ xuống một bậc"),
    ("bong-sen-vang-club.md", "Quyền lợi theo hạng", "Hội viên hạng Bạc được cộng thêm bao nhiêu ký hành lý ký gửi?", "10 kg"),
    ("bong-sen-vang-club.md", "Quyền lợi theo hạng", "Thẻ Bạch Kim được dẫn theo bao nhiêu người vào phòng chờ Bông Sen?", "1 khách đi cùng"),
    ("bong-sen-vang-club.md", "Quyền lợi theo hạng", "Mỗi năm hội viên Bạch Kim nhận được mấy phiếu nâng hạng lên Thương gia?", "2 phiếu nâng hạng"),
    ("bong-sen-vang-club.md", "Quyền lợi theo hạng", "Hạng Vàng được thưởng thêm bao nhiêu phần trăm dặm thưởng?", "50%"),
    ("bong-sen-vang-club.md", "Quyền lợi theo hạng", "Phí thường niên để giữ thẻ Bạch Kim là bao nhiêu?", None),
    ("bong-sen-vang-club.md", "Quản lý tài khoản", "Tôi xem lịch sử chuyến bay và số dặm của mình ở mục nào?", "Tài khoản của tôi"),
    ("bong-sen-vang-club.md", "Quản lý tài khoản", "Dặm thưởng trong tài khoản của tôi dùng được trong bao lâu thì hết hạn?", None),

    # cham-huy-chuyen-bay.md
    ("cham-huy-chuyen-bay.md", "Chăm sóc khi chuyến bay bị chậm", "Chuyến bay trễ bao lâu thì hành khách được phát nước và đồ ăn nhẹ?", "Từ 2 giờ"),
    ("cham-huy-chuyen-bay.md", "Chăm sóc khi chuyến bay bị chậm", "Nếu hãng không phát suất ăn, tôi được hoàn tiền ăn tối đa bao nhiêu cho mỗi bữa?", "200.000 VND"),
    ("cham-huy-chuyen-bay.md", "Chăm sóc khi chuyến bay bị chậm", "Chuyến bay bị dời sang ngày hôm sau thì hãng lo cho hành khách những gì?", "Phòng khách sạn và xe đưa đón"),
    ("cham-huy-chuyen-bay.md", "Chăm sóc khi chuyến bay bị chậm", "Tôi sống ngay tại thành phố khởi hành, vậy thay cho khách sạn tôi được hỗ trợ khoản gì?", "chi phí đi lại"),
    ("cham-huy-chuyen-bay.md", "Mức bồi thường", "Chuyến nội địa bị trễ hơn 5 tiếng do lỗi của hãng thì mỗi khách được bồi thường bao nhiêu?", "400.000 VND"),
    ("cham-huy-chuyen-bay.md", "Mức bồi thường", "Mức bồi thường cho một chặng quốc tế bị chậm là bao nhiêu tiền?", "1.000.000 VND"),
    ("cham-huy-chuyen-bay.md", "Mức bồi thường", "Nếu chọn nhận phiếu bay thay vì tiền mặt thì phiếu trị giá bao nhiêu phần trăm số tiền bồi thường?", "150%"),
    ("cham-huy-chuyen-bay.md", "Mức bồi thường", "Phiếu bay nhận bồi thường có thời hạn sử dụng bao lâu?", "12 tháng"),
    ("cham-huy-chuyen-bay.md", "Mức bồi thường", "Tiền bồi thường được chuyển khoản hay trả bằng tiền mặt?", None),
    ("cham-huy-chuyen-bay.md", "Hủy chuyến và thay đổi lịch bay", "Khi chuyến bay bị hủy, tôi được đổi miễn phí sang chuyến khác trong khoảng thời gian nào?", "trong vòng 30 ngày"),
    ("cham-huy-chuyen-bay.md", "Hủy chuyến và thay đổi lịch bay", "Chuyến bay bị hủy thì bao nhiêu ngày sau tôi mới nhận lại được tiền vé?", None),
    ("cham-huy-chuyen-bay.md", "Trường hợp bất khả kháng", "Chuyến bay bị hoãn vì bão thì trường hợp nào tôi vẫn được bố trí phòng khách sạn?", "khi chuyến bay dời sang ngày hôm sau"),
    ("cham-huy-chuyen-bay.md", "Trường hợp bất khả kháng", "Chuyến bay bị hoãn vì thời tiết xấu thì hãng có trả bồi thường bằng tiền không?", "không trả khoản bồi thường bằng tiền"),
    ("cham-huy-chuyen-bay.md", "Từ chối chuyên chở do hết chỗ", "Tôi bị từ chối lên máy bay vì hết chỗ trên chặng quốc tế thì được bồi thường bao nhiêu?", "2.000.000 VND"),
    ("cham-huy-chuyen-bay.md", "Từ chối chuyên chở do hết chỗ", "Chưa nhận bồi thường ở sân bay thì tôi phải gửi yêu cầu trong thời hạn bao lâu?", "trong vòng 30 ngày kể từ ngày bay"),
    ("cham-huy-chuyen-bay.md", "Từ chối chuyên chở do hết chỗ", "Sau khi yêu cầu bồi thường được duyệt thì bao lâu tôi nhận được tiền?", "15 ngày làm việc"),
    ("cham-huy-chuyen-bay.md", "Từ chối chuyên chở do hết chỗ", "Hành khách tự nguyện nhường chỗ trên chuyến bay quá tải được hãng trả bao nhiêu tiền?", None),

    # chon-cho-ngoi.md
    ("chon-cho-ngoi.md", "Chọn chỗ ngồi", "Chậm nhất bao lâu trước giờ bay thì tôi vẫn còn chọn trước chỗ ngồi được?", "3 giờ trước giờ khởi hành"),
    ("chon-cho-ngoi.md", "Chọn chỗ ngồi", "Ghế phía trước nằm ở khu vực nào trên máy bay?", "nửa đầu khoang phổ thông"),
    ("chon-cho-ngoi.md", "Chọn chỗ ngồi", "Khoảng để chân của ghế rộng chân rộng hơn ghế thường bao nhiêu cm?", None),
    ("chon-cho-ngoi.md", "Phí chọn chỗ (mỗi khách, mỗi chặng)", "Chọn ghế tiêu chuẩn cho chặng bay quốc tế tốn bao nhiêu?", "120.000 VND", 0),
    ("chon-cho-ngoi.md", "Phí chọn chỗ (mỗi khách, mỗi chặng)", "Giá chọn ghế rộng chân trên chuyến nội địa là bao nhiêu?", "200.000 VND"),
    ("chon-cho-ngoi.md", "Phí chọn chỗ (mỗi khách, mỗi chặng)", "Vé Phổ thông Linh hoạt được giảm bao nhiêu khi chọn ghế rộng chân?", "50%"),
    ("chon-cho-ngoi.md", "Phí chọn chỗ (mỗi khách, mỗi chặng)", "Làm thủ tục online thì tôi được chọn miễn phí loại ghế nào?", "ghế tiêu chuẩn còn trống"),
    ("chon-cho-ngoi.md", "Điều kiện ngồi ở hàng ghế lối thoát hiểm", "Phải đủ bao nhiêu tuổi mới được ngồi hàng ghế cạnh cửa thoát hiểm?", "Từ 15 tuổi trở lên"),
    ("chon-cho-ngoi.md", "Điều kiện ngồi ở hàng ghế lối thoát hiểm", "Ngồi cạnh lối thoát hiểm thì phải hiểu hướng dẫn bằng ngôn ngữ nào?", "tiếng Việt hoặc tiếng Anh"),
    ("chon-cho-ngoi.md", "Điều kiện ngồi ở hàng ghế lối thoát hiểm", "Nếu bị tiếp viên đổi chỗ vì không đủ điều kiện ngồi cạnh lối thoát hiểm, tôi có được hoàn phí ghế rộng chân không?", "không được hoàn"),
    ("chon-cho-ngoi.md", "Hoàn và chuyển phí chọn chỗ", "Hãng đang bay những loại máy bay nào?", "Airbus A321neo và Boeing 787-9"),
    ("chon-cho-ngoi.md", "Hoàn và chuyển phí chọn chỗ", "Chuyến bay trễ bao lâu thì tôi được hoàn lại phí chọn chỗ?", "từ 3 giờ trở lên"),
    ("chon-cho-ngoi.md", "Hoàn và chuyển phí chọn chỗ", "Phí chọn chỗ được hoàn thì bao lâu tiền về tài khoản của tôi?", None),

    # dat-ve-doan.md
    ("dat-ve-doan.md", "Gửi yêu cầu", "Nhóm phải có ít nhất bao nhiêu người thì mới đặt được vé đoàn?", "từ 10 hành khách trở lên"),
    ("dat-ve-doan.md", "Gửi yêu cầu", "Đoàn đi nước ngoài phải gửi yêu cầu trước ngày bay tối thiểu bao lâu?", "21 ngày"),
    ("dat-ve-doan.md", "Gửi yêu cầu", "Báo giá vé đoàn giữ nguyên được trong mấy ngày?", "3 ngày"),
    ("dat-ve-doan.md", "Gửi yêu cầu", "Gửi yêu cầu xong thì bao lâu hãng gửi báo giá cho đoàn?", "2 ngày làm việc"),
    ("dat-ve-doan.md", "Đặt cọc và thanh toán", "Đặt vé đoàn phải cọc trước bao nhiêu phần trăm?", "30%"),
    ("dat-ve-doan.md", "Đặt cọc và thanh toán", "Hạn cuối để gửi danh sách họ tên của cả đoàn là khi nào?", "10 ngày trước ngày khởi hành"),
    ("dat-ve-doan.md", "Đặt cọc và thanh toán", "Tiền cọc vé đoàn có thể trả bằng thẻ tín dụng được không?", None),
    ("dat-ve-doan.md", "Thay đổi số lượng", "Đoàn được bớt tối đa bao nhiêu người mà không bị mất tiền cọc?", "10% số khách"),
    ("dat-ve-doan.md", "Thay đổi số lượng", "Đổi tên một thành viên đoàn đi quốc tế sau hạn gửi danh sách thì mất bao nhiêu?", "400.000 VND"),
    ("dat-ve-doan.md", "Thay đổi số lượng", "Còn chưa đầy 24 giờ nữa là bay, đổi tên một thành viên đoàn thì phí bao nhiêu?", None),
    ("dat-ve-doan.md", "Điều kiện vé đoàn sau khi xuất", "Mỗi người trong đoàn được ký gửi bao nhiêu ký hành lý?", "20 kg"),
    ("dat-ve-doan.md", "Điều kiện vé đoàn sau khi xuất", "Cả đoàn muốn đổi ngày bay thì phí tính cho mỗi khách là bao nhiêu?", "350.000 VND"),
    ("dat-ve-doan.md", "Điều kiện vé đoàn sau khi xuất", "Bay theo vé đoàn thì được tích bao nhiêu phần trăm dặm?", "50%"),
    ("dat-ve-doan.md", "Ưu đãi cho đoàn", "Cứ bao nhiêu khách trả tiền thì đoàn được tặng một vé?", "25 khách"),
    ("dat-ve-doan.md", "Ưu đãi cho đoàn", "Đoàn đông bao nhiêu người thì có quầy làm thủ tục riêng?", "từ 30 khách trở lên"),
    ("dat-ve-doan.md", "Ưu đãi cho đoàn", "Trưởng đoàn nên ra quầy sớm hơn giờ khuyến nghị bao nhiêu phút?", "30 phút"),
    ("dat-ve-doan.md", "Ưu đãi cho đoàn", "Quầy làm thủ tục riêng cho đoàn mở cửa trước giờ bay bao lâu?", None),

    # doi-ve.md
    ("doi-ve.md", "Đổi vé", "Đổi vé Phổ thông Tiết kiệm trên chặng quốc tế mất phí bao nhiêu?", "800.000 VND"),
    ("doi-ve.md", "Đổi vé", "Tôi phải đổi vé muộn nhất là bao lâu trước giờ bay?", "3 giờ trước giờ khởi hành"),
    ("doi-ve.md", "Đổi vé", "Vé Tiết kiệm thì được phép đổi những gì?", "Ngày, giờ bay trên cùng chặng"),
    ("doi-ve.md", "Khi vé mới rẻ hơn", "Vé Linh hoạt đổi sang chuyến rẻ hơn thì tiền dư được trả vào đâu?", "Ví Sen Vàng"),
    ("doi-ve.md", "Khi vé mới rẻ hơn", "Số tiền chênh lệch hoàn vào ví dùng được trong bao lâu?", "12 tháng"),
    ("doi-ve.md", "Khi vé mới rẻ hơn", "Để đổi vé trên website, tôi cần nhập những thông tin gì?", "mã đặt chỗ và họ"),
    ("doi-ve.md", "Khi vé mới rẻ hơn", "Vé tôi mua qua đại lý thì muốn đổi phải liên hệ ai?", "đại lý đã bán vé"),
    ("doi-ve.md", "Khi vé mới rẻ hơn", "Đổi vé qua tổng đài thì có bị thu thêm phí dịch vụ không?", None),
    ("doi-ve.md", "Ví dụ", "Vé Tiết kiệm khứ hồi Hà Nội – Đà Nẵng đổi ngày cả hai chiều thì tổng phí đổi là bao nhiêu?", "700.000 VND"),
    ("doi-ve.md", "Ví dụ", "Khi đổi vé, gói hành lý tôi đã mua trước sẽ được xử lý thế nào?", "chuyển miễn phí sang chuyến bay mới"),
    ("doi-ve.md", "Ví dụ", "Hãng dời giờ bay bao nhiêu thì tôi được đổi vé miễn phí?", "từ 2 giờ trở lên"),
    ("doi-ve.md", "Ví dụ", "Đã bay chiều đi rồi thì tôi còn đổi được những chặng nào?", "các chặng chưa sử dụng"),
    ("doi-ve.md", "Ví dụ", "Vé Thương gia đổi sang chuyến rẻ hơn thì tiền chênh lệch được hoàn về đâu?", None),

    # giay-to-tuy-than.md
    ("giay-to-tuy-than.md", "Chuyến bay nội địa", "Giấy xác nhận nhân thân do công an xã cấp dùng được trong bao lâu?", "30 ngày"),
    ("giay-to-tuy-than.md", "Chuyến bay nội địa", "Người nước ngoài bay nội địa thì cần mang theo giấy tờ gì?", "Hộ chiếu còn hạn hoặc thẻ thường trú, tạm trú"),
    ("giay-to-tuy-than.md", "Chuyến bay nội địa", "Tài khoản VNeID phải ở mức độ nào mới dùng thay giấy tờ khi đi máy bay được?", "mức độ 2"),
    ("giay-to-tuy-than.md", "Chuyến bay nội địa", "Trẻ bao nhiêu tuổi thì giấy tờ không bắt buộc phải có ảnh?", "dưới 14 tuổi", 1),
    ("giay-to-tuy-than.md", "Chuyến bay nội địa", "Họ tên trên vé máy bay được in theo kiểu nào?", "không dấu"),
    ("giay-to-tuy-than.md", "Chuyến bay nội địa", "Bay quốc tế thì hộ chiếu cần còn hạn tối thiểu mấy tháng?", None),
    ("giay-to-tuy-than.md", "Chuyến bay quốc tế", "Đi nước ngoài thì hộ chiếu phải còn hạn ít nhất bao lâu?", "6 tháng"),
    ("giay-to-tuy-than.md", "Chuyến bay quốc tế", "Con nhỏ đi nước ngoài có được đi chung hộ chiếu với bố mẹ không, hay phải có giấy tờ gì?", "hộ chiếu riêng"),
    ("giay-to-tuy-than.md", "Chuyến bay quốc tế", "Giấy đồng ý cho con đi nước ngoài với một mình bố hoặc mẹ có cần công chứng không?", None),
    ("giay-to-tuy-than.md", "Khi quên hoặc mất giấy tờ", "Quên mang căn cước khi bay nội địa thì tôi có thể dùng gì thay?", "ứng dụng VNeID"),
    ("giay-to-tuy-than.md", "Khi quên hoặc mất giấy tờ", "Xin giấy xác nhận nhân thân ở công an xã thì mất bao lâu mới có?", None),

    # hang-ve.md
    ("hang-ve.md", "Các hạng vé của Sen Vàng Airlines", "Mã hãng của Sen Vàng Airlines là gì?", "SV"),
    ("hang-ve.md", "Các hạng vé của Sen Vàng Airlines", "Ở Hà Nội, hãng lấy sân bay nào làm trung tâm khai thác?", "sân bay Nội Bài"),
    ("hang-ve.md", "Các hạng vé của Sen Vàng Airlines", "Sen Vàng Airlines chia vé thành mấy hạng?", "ba hạng"),
    ("hang-ve.md", "Phổ thông Tiết kiệm", "Vé Tiết kiệm được mang bao nhiêu ký hành lý xách tay?", "7 kg"),
    ("hang-ve.md", "Phổ thông Tiết kiệm", "Hủy vé Tiết kiệm thì tôi lấy lại được những khoản nào?", "thuế, phí sân bay của chặng chưa sử dụng"),
    ("hang-ve.md", "Phổ thông Tiết kiệm", "Bay vé Tiết kiệm thì được tích bao nhiêu dặm?", "50% số dặm bay"),
    ("hang-ve.md", "Phổ thông Tiết kiệm", "Vé Phổ thông Tiết kiệm chặng Hà Nội – TP. Hồ Chí Minh giá khoảng bao nhiêu?", None),
    ("hang-ve.md", "Phổ thông Linh hoạt", "Vé Linh hoạt được ký gửi bao nhiêu ký?", "23 kg"),
    ("hang-ve.md", "Phổ thông Linh hoạt", "Hoàn vé Linh hoạt chặng quốc tế thì bị trừ phí bao nhiêu?", "600.000 VND"),
    ("hang-ve.md", "Phổ thông Linh hoạt", "Trên chuyến quốc tế, khách hạng Linh hoạt được phục vụ ăn gì?", "suất ăn chính"),
    ("hang-ve.md", "Thương gia", "Khách Thương gia được ký gửi tối đa bao nhiêu ký?", "40 kg"),
    ("hang-ve.md", "Thương gia", "Hạng Thương gia tích dặm theo tỷ lệ nào?", "150% số dặm bay"),
    ("hang-ve.md", "Thương gia", "Khách Thương gia có phòng chờ Bông Sen ở sân bay Phú Quốc không?", None),
    ("hang-ve.md", "Mốc 3 giờ trước giờ khởi hành", "Mã đặt chỗ của tôi gồm bao nhiêu ký tự?", "6 ký tự"),
    ("hang-ve.md", "Mốc 3 giờ trước giờ khởi hành", "Vé Thương gia đã xuất rồi có hạ xuống hạng Phổ thông được không?", "không hỗ trợ hạ hạng vé"),

    # hanh-khach-mang-thai.md
    ("hanh-khach-mang-thai.md", "Điều kiện theo tuổi thai", "Mang song thai thì tôi được bay đến tuần thai thứ mấy?", "Đến hết tuần 32"),
    ("hanh-khach-mang-thai.md", "Điều kiện theo tuổi thai", "Thai đơn từ tuần bao nhiêu thì hãng không nhận chở nữa?", "Từ tuần 36 trở đi"),
    ("hanh-khach-mang-thai.md", "Điều kiện theo tuổi thai", "Tuổi thai được tính vào ngày nào?", "ngày khởi hành của từng chặng bay"),
    ("hanh-khach-mang-thai.md", "Dưới 28 tuần", "Bầu dưới 28 tuần thì nên mang theo giấy tờ gì phòng khi được hỏi?", "sổ khám thai hoặc giấy siêu âm"),
    ("hanh-khach-mang-thai.md", "Dưới 28 tuần", "Tôi đang bầu 20 tuần, có được ngồi hàng ghế cạnh lối thoát hiểm không?", None),
    ("hanh-khach-mang-thai.md", "Từ 28 tuần đến giới hạn cho phép", "Giấy xác nhận sức khỏe của bác sĩ phải được cấp trong vòng bao lâu trước ngày bay?", "7 ngày", 0),
    ("hanh-khach-mang-thai.md", "Từ 28 tuần đến giới hạn cho phép", "Bà bầu trên 28 tuần phải ký giấy gì tại quầy làm thủ tục?", "giấy cam kết miễn trừ trách nhiệm"),
    ("hanh-khach-mang-thai.md", "Không nhận chuyên chở", "Phụ nữ mới sinh được bao nhiêu ngày thì hãng chưa nhận chuyên chở?", "dưới 7 ngày"),
    ("hanh-khach-mang-thai.md", "Không nhận chuyên chở", "Nếu phải nằm viện và không bay được thì vé của tôi được xử lý thế nào?", "hoàn vé miễn phí"),
    ("hanh-khach-mang-thai.md", "Chỗ ngồi và dịch vụ", "Bà bầu muốn mượn xe lăn ở sân bay thì phải đăng ký trước bao lâu?", "48 giờ"),
    ("hanh-khach-mang-thai.md", "Chỗ ngồi và dịch vụ", "Khi mang thai thì nên thắt dây an toàn ở vị trí nào?", "thấp, ngang dưới bụng"),
    ("hanh-khach-mang-thai.md", "Chỗ ngồi và dịch vụ", "Hành khách mang thai có được giảm giá vé máy bay không?", None),

    # hanh-ly-dac-biet.md
    ("hanh-ly-dac-biet.md", "Dụng cụ thể thao", "Một bộ gậy golf được mang tối đa bao nhiêu cây?", "14 gậy"),
    ("hanh-ly-dac-biet.md", "Dụng cụ thể thao", "Ván lướt sóng dài tối đa bao nhiêu thì hãng nhận chở?", "290 cm"),
    ("hanh-ly-dac-biet.md", "Dụng cụ thể thao", "Mang bình khí lặn theo thì cần chuẩn bị thế nào?", "rỗng hoàn toàn và mở van"),
    ("hanh-ly-dac-biet.md", "Cách tính phí", "Hết tiêu chuẩn ký gửi thì gửi xe đạp trên chặng quốc tế mất bao nhiêu tiền?", "600.000 VND"),
    ("hanh-ly-dac-biet.md", "Cách tính phí", "Mỗi kiện dụng cụ thể thao được nặng tối đa bao nhiêu?", "32 kg"),
    ("hanh-ly-dac-biet.md", "Cách tính phí", "Tôi phải đăng ký gửi dụng cụ thể thao trước giờ bay ít nhất bao lâu?", "24 giờ"),
    ("hanh-ly-dac-biet.md", "Nhạc cụ", "Cây đàn guitar dài tối đa bao nhiêu thì được mang lên khoang hành khách?", "110 cm"),
    ("hanh-ly-dac-biet.md", "Nhạc cụ", "Mua ghế riêng cho đàn cello thì giá ghế được tính ra sao?", "bằng giá vé người lớn cùng hạng"),
    ("hanh-ly-dac-biet.md", "Nhạc cụ", "Đàn cello tính cả hộp được nặng tối đa bao nhiêu?", "75 kg"),
    ("hanh-ly-dac-biet.md", "Nhạc cụ", "Ký gửi đàn contrabass trong hộp cứng trên chặng nội địa tốn bao nhiêu tiền?", None),
    ("hanh-ly-dac-biet.md", "Đồ dễ vỡ và đồ có giá trị", "Mang flycam đi máy bay thì phải xử lý pin như thế nào?", "tháo pin và mang pin trong hành lý xách tay"),
    ("hanh-ly-dac-biet.md", "Đồ dễ vỡ và đồ có giá trị", "Nhân viên sẽ dán nhãn gì lên kiện hàng gốm sứ tôi ký gửi?", "Hàng dễ vỡ"),

    # hanh-ly-ky-gui.md
    ("hanh-ly-ky-gui.md", "Tiêu chuẩn miễn cước theo hạng vé", "Vé Phổ thông Linh hoạt có tiêu chuẩn ký gửi bao nhiêu?", "23 kg"),
    ("hanh-ly-ky-gui.md", "Tiêu chuẩn miễn cước theo hạng vé", "Em bé dưới 2 tuổi được ký gửi miễn phí những gì?", "1 xe đẩy gấp gọn hoặc 1 ghế ngồi ô tô"),
    ("hanh-ly-ky-gui.md", "Tiêu chuẩn miễn cước theo hạng vé", "Tiêu chuẩn ký gửi có giới hạn số kiện không?", "không giới hạn số kiện"),
    ("hanh-ly-ky-gui.md", "Cộng thêm cho hội viên Bông Sen Vàng Club", "Hội viên hạng Vàng được cộng thêm bao nhiêu ký ký gửi?", "15 kg"),
    ("hanh-ly-ky-gui.md", "Cộng thêm cho hội viên Bông Sen Vàng Club", "Hội viên hạng Bạc bay vé Tiết kiệm thì được ký gửi miễn cước bao nhiêu?", "10 kg", 1),
    ("hanh-ly-ky-gui.md", "Giới hạn mỗi kiện", "Tổng ba chiều của một kiện ký gửi không được vượt quá bao nhiêu?", "203 cm"),
    ("hanh-ly-ky-gui.md", "Giới hạn mỗi kiện", "Hai người cùng đặt chỗ vé Linh hoạt thì được gộp ký gửi tổng cộng bao nhiêu ký?", "46 kg"),
    ("hanh-ly-ky-gui.md", "Giới hạn mỗi kiện", "Kiện hành lý trên 32 kg gửi theo đường hàng hóa thì cước phí bao nhiêu?", None),
    ("hanh-ly-ky-gui.md", "Hành trình nối chuyến", "Tôi mua hai vé riêng lẻ để nối chuyến thì phải làm gì với hành lý ký gửi?", "cần nhận lại hành lý và làm thủ tục ký gửi lại"),
    ("hanh-ly-ky-gui.md", "Hành trình nối chuyến", "Những đồ nào tuyệt đối không được để trong hành lý ký gửi?", "Pin sạc dự phòng, pin lithium rời và thuốc lá điện tử"),
    ("hanh-ly-ky-gui.md", "Chuẩn bị hành lý", "Quầy nhận hành lý ký gửi cho chuyến quốc tế đóng trước giờ bay bao lâu?", "50 phút"),
    ("hanh-ly-ky-gui.md", "Chuẩn bị hành lý", "Trên nhãn hành lý nên ghi những thông tin gì?", "họ tên và số điện thoại liên lạc"),
    ("hanh-ly-ky-gui.md", "Chuẩn bị hành lý", "Ở sân bay hãng có bán khóa vali đạt chuẩn không, giá bao nhiêu?", None),

    # hanh-ly-that-lac-hu-hong.md
    ("hanh-ly-that-lac-hu-hong.md", "Báo cáo tại sân bay", "Vali của tôi không đến thì tôi cần lập biên bản gì ở sân bay?", "Biên bản bất thường hành lý"),
    ("hanh-ly-that-lac-hu-hong.md", "Báo cáo tại sân bay", "Sau khi lập biên bản, tôi nhận được gì để theo dõi việc tìm hành lý?", "mã hồ sơ"),
    ("hanh-ly-that-lac-hu-hong.md", "Thời hạn khiếu nại", "Về nhà mới thấy vali bị hỏng thì tôi phải khiếu nại trong bao lâu?", "7 ngày"),
    ("hanh-ly-that-lac-hu-hong.md", "Thời hạn khiếu nại", "Không tìm thấy sau bao lâu thì hành lý bị coi là thất lạc hẳn?", "sau 21 ngày"),
    ("hanh-ly-that-lac-hu-hong.md", "Thời hạn khiếu nại", "Hành lý về trễ thì tôi có bao lâu để gửi khiếu nại bằng văn bản?", "21 ngày", 0),
    ("hanh-ly-that-lac-hu-hong.md", "Hỗ trợ khi hành lý đến chậm", "Hành lý đến chậm thì mỗi ngày tôi được hỗ trợ bao nhiêu tiền mua đồ dùng?", "500.000 VND"),
    ("hanh-ly-that-lac-hu-hong.md", "Hỗ trợ khi hành lý đến chậm", "Tiền hỗ trợ mua vật dụng thiết yếu được tính tối đa bao nhiêu ngày?", "3 ngày"),
    ("hanh-ly-that-lac-hu-hong.md", "Hỗ trợ khi hành lý đến chậm", "Nếu tôi muốn hành lý tìm thấy được giao về tỉnh khác thì phí giao là bao nhiêu?", None),
    ("hanh-ly-that-lac-hu-hong.md", "Mức bồi thường", "Mất hành lý trên chặng nội địa thì được đền tối đa bao nhiêu mỗi ký?", "400.000 VND"),
    ("hanh-ly-that-lac-hu-hong.md", "Mức bồi thường", "Trên chặng quốc tế, mức bồi thường hành lý theo quy định nào?", "Công ước Montreal 1999"),
    ("hanh-ly-that-lac-hu-hong.md", "Mức bồi thường", "Vali chỉ bị trầy xước nhẹ thì tôi được bồi thường bao nhiêu?", None),
    ("hanh-ly-that-lac-hu-hong.md", "Khai báo giá trị", "Phí khai báo giá trị hành lý là bao nhiêu?", "0,5% giá trị khai báo"),
    ("hanh-ly-that-lac-hu-hong.md", "Khai báo giá trị", "Mỗi hành khách được khai báo giá trị hành lý tối đa bao nhiêu tiền?", "50.000.000 VND"),
    ("hanh-ly-that-lac-hu-hong.md", "Khai báo giá trị", "Đồ để quên trên máy bay được hãng giữ lại bao lâu?", "30 ngày"),

    # hanh-ly-xach-tay.md
    ("hanh-ly-xach-tay.md", "Tiêu chuẩn theo hạng vé", "Hạng Thương gia được mang mấy kiện xách tay chính?", "2 kiện chính"),
    ("hanh-ly-xach-tay.md", "Tiêu chuẩn theo hạng vé", "Với hạng Thương gia, mỗi kiện xách tay chính nặng tối đa bao nhiêu?", "10 kg", 1),
    ("hanh-ly-xach-tay.md", "Tiêu chuẩn theo hạng vé", "Vé Linh hoạt được xách tay tổng cộng bao nhiêu ký?", "10 kg", 0),
    ("hanh-ly-xach-tay.md", "Kích thước tối đa", "Vali xách tay được có kích thước tối đa bao nhiêu?", "56 x 36 x 23 cm"),
    ("hanh-ly-xach-tay.md", "Kích thước tối đa", "Túi đồ mua ở cửa hàng miễn thuế được mang thêm tối đa mấy ký?", "3 kg"),
    ("hanh-ly-xach-tay.md", "Kích thước tối đa", "Túi đồ dùng cho em bé được mang tối đa bao nhiêu ký?", "5 kg"),
    ("hanh-ly-xach-tay.md", "Kích thước tối đa", "Vé Linh hoạt thì kiện xách tay chính được nặng tối đa bao nhiêu?", None),
    ("hanh-ly-xach-tay.md", "Khi hành lý xách tay vượt quy định", "Hành lý xách tay bị quá ký trên chuyến quốc tế thì tính phí thế nào?", "150.000 VND/kg"),
    ("hanh-ly-xach-tay.md", "Khi hành lý xách tay vượt quy định", "Mua trước gói hành lý ký gửi 20 kg cho chặng nội địa giá bao nhiêu?", None),
    ("hanh-ly-xach-tay.md", "Chuyến bay đông khách", "Khoang hành lý đầy, tiếp viên gửi vali xách tay của tôi xuống khoang hàng thì có mất phí không?", "hoàn toàn miễn phí"),
    ("hanh-ly-xach-tay.md", "Chuyến bay đông khách", "Pin sạc dự phòng bắt buộc phải để ở đâu?", "trong hành lý xách tay"),

    # ho-tro-dac-biet.md
    ("ho-tro-dac-biet.md", "Dịch vụ xe lăn (miễn phí)", "Tôi cần đăng ký hỗ trợ đặc biệt trước giờ bay bao lâu?", "48 giờ"),
    ("ho-tro-dac-biet.md", "Dịch vụ xe lăn (miễn phí)", "Bố tôi không tự di chuyển được kể cả trong khoang máy bay thì nên đặt loại xe lăn nào?", "Xe lăn đến tận ghế"),
    ("ho-tro-dac-biet.md", "Xe lăn và thiết bị cá nhân", "Nếu chỉ mang một pin rời của xe lăn điện thì pin đó được tối đa bao nhiêu Wh?", "300 Wh"),
    ("ho-tro-dac-biet.md", "Xe lăn và thiết bị cá nhân", "Người dùng xe lăn điện bay quốc tế phải có mặt ở quầy trước giờ bay bao lâu?", "3 giờ"),
    ("ho-tro-dac-biet.md", "Xe lăn và thiết bị cá nhân", "Xe lăn điện nặng tối đa bao nhiêu ký thì hãng nhận ký gửi?", None),
    ("ho-tro-dac-biet.md", "Hành khách cần hỗ trợ y tế", "Hành khách cần hỗ trợ y tế phải có giấy xác nhận theo mẫu nào?", "mẫu MEDIF"),
    ("ho-tro-dac-biet.md", "Hành khách cần hỗ trợ y tế", "Bác sĩ phải điền giấy MEDIF trong vòng bao nhiêu ngày trước ngày bay?", "10 ngày"),
    ("ho-tro-dac-biet.md", "Hành khách cần hỗ trợ y tế", "Máy tạo oxy di động phải có đủ pin cho bao nhiêu phần trăm thời gian bay?", "150%"),
    ("ho-tro-dac-biet.md", "Hành khách cần hỗ trợ y tế", "Dịch vụ cáng phải đăng ký trước giờ khởi hành bao lâu?", "72 giờ"),
    ("ho-tro-dac-biet.md", "Người đi kèm", "Người đi kèm hành khách cần hỗ trợ phải bao nhiêu tuổi?", "từ 18 tuổi trở lên"),
    ("ho-tro-dac-biet.md", "Người đi kèm", "Hành khách cần hỗ trợ được ưu tiên xếp ghế ở vị trí nào?", "gần cửa máy bay hoặc nhà vệ sinh"),
    ("ho-tro-dac-biet.md", "Người đi kèm", "Người đi kèm hành khách khuyết tật có được giảm giá vé không?", None),

    # hoa-don-vat.md
    ("hoa-don-vat.md", "Yêu cầu hóa đơn khi đặt vé", "Hóa đơn điện tử được gửi qua email trong bao lâu kể từ ngày thanh toán?", "3 ngày làm việc"),
    ("hoa-don-vat.md", "Yêu cầu hóa đơn khi đặt vé", "Cá nhân không có mã số thuế thì có thể điền gì thay thế?", "số định danh cá nhân"),
    ("hoa-don-vat.md", "Yêu cầu hóa đơn sau khi đặt", "Lúc đặt vé tôi quên điền thông tin xuất hóa đơn, vậy tôi còn bao lâu để bổ sung?", "30 ngày"),
    ("hoa-don-vat.md", "Yêu cầu hóa đơn sau khi đặt", "Quá hạn bổ sung thông tin thì hóa đơn được xuất cho ai?", "Người mua không lấy hóa đơn"),
    ("hoa-don-vat.md", "Tra cứu và tải hóa đơn", "Tôi tải hóa đơn PDF ở trang web nào?", "senvang.example/hoa-don"),
    ("hoa-don-vat.md", "Tra cứu và tải hóa đơn", "Dịch vụ vận chuyển quốc tế chịu thuế suất bao nhiêu?", "0%"),
    ("hoa-don-vat.md", "Tra cứu và tải hóa đơn", "Vé máy bay nội địa chịu thuế suất VAT bao nhiêu phần trăm?", None),
    ("hoa-don-vat.md", "Sai thông tin trên hóa đơn", "Hóa đơn ghi sai mã số thuế thì tôi phải báo trong vòng bao lâu?", "30 ngày"),
    ("hoa-don-vat.md", "Sai thông tin trên hóa đơn", "Khi tôi hoàn vé, hãng lập loại hóa đơn gì?", "hóa đơn điều chỉnh giảm"),
    ("hoa-don-vat.md", "Trường hợp khác", "Mua Wi-Fi trên máy bay mà muốn lấy hóa đơn thì phải yêu cầu trong bao lâu?", "7 ngày"),
    ("hoa-don-vat.md", "Trường hợp khác", "Vé thưởng đổi bằng dặm được xuất hóa đơn cho phần nào?", "phần thuế, phí trả bằng tiền"),
    ("hoa-don-vat.md", "Trường hợp khác", "Yêu cầu xuất hóa đơn cho đồ ăn mua trên máy bay thì bao lâu tôi nhận được hóa đơn?", None),

    # hoan-ve.md
    ("hoan-ve.md", "Điều kiện hoàn theo hạng vé", "Hoàn vé Linh hoạt chặng nội địa mất phí bao nhiêu?", "300.000 VND"),
    ("hoan-ve.md", "Điều kiện hoàn theo hạng vé", "Bảo lưu tiền vé vào Ví Sen Vàng thì dùng được trong bao lâu?", "12 tháng"),
    ("hoan-ve.md", "Điều kiện hoàn theo hạng vé", "Muộn nhất bao lâu trước giờ bay tôi phải gửi yêu cầu hoàn vé?", "3 giờ trước giờ khởi hành"),
    ("hoan-ve.md", "Hủy miễn phí trong 24 giờ", "Vé đặt trên website được hủy miễn phí trong khoảng thời gian nào sau khi thanh toán?", "trong vòng 24 giờ"),
    ("hoan-ve.md", "Hủy miễn phí trong 24 giờ", "Muốn được hủy miễn phí, ngày bay phải cách lúc đặt vé ít nhất bao lâu?", "ít nhất 7 ngày"),
    ("hoan-ve.md", "Hủy miễn phí trong 24 giờ", "Hủy vé trong 24 giờ thì bao lâu sau tiền mới về tài khoản?", None),
    ("hoan-ve.md", "Trường hợp đặc biệt", "Người thân mất trong khoảng thời gian nào trước ngày bay thì tôi được hoàn toàn bộ tiền vé?", "trong vòng 30 ngày trước ngày bay"),
    ("hoan-ve.md", "Trường hợp đặc biệt", "Hồ sơ hoàn vé đặc biệt phải gửi kèm giấy tờ trong thời hạn nào?", "30 ngày kể từ ngày khởi hành dự kiến"),
    ("hoan-ve.md", "Trường hợp đặc biệt", "Người thân trực hệ gồm những ai?", "cha, mẹ, vợ, chồng, con"),
    ("hoan-ve.md", "Cách gửi yêu cầu hoàn vé", "Vé chưa bay thì tôi được yêu cầu hoàn trong thời hạn bao lâu kể từ ngày xuất vé?", "12 tháng"),
    ("hoan-ve.md", "Cách gửi yêu cầu hoàn vé", "Vé mua trên ứng dụng thì tôi vào mục nào để xin hoàn?", "Quản lý đặt chỗ"),
    ("hoan-ve.md", "Thời gian nhận tiền", "Hãng xử lý yêu cầu hoàn vé trong bao lâu?", "7 ngày làm việc"),
    ("hoan-ve.md", "Thời gian nhận tiền", "Tôi trả vé bằng tiền mặt thì hãng hoàn tiền bằng cách nào?", "chuyển khoản"),
    ("hoan-ve.md", "Lưu ý", "Chuyến bay trễ bao lâu thì suất ăn đặt trước được hoàn tiền?", "từ 3 giờ trở lên"),
    ("hoan-ve.md", "Lưu ý", "Vé khứ hồi được hoàn theo cách nào?", "theo từng chặng"),
    ("hoan-ve.md", "Lưu ý", "Tôi đã bay chiều đi, giờ hoàn chiều về của vé Linh hoạt thì bị trừ phí bao nhiêu?", None),

    # khach-khong-co-mat.md
    ("khach-khong-co-mat.md", "Khách không có mặt (no-show)", "Cửa ra máy bay của chuyến quốc tế đóng trước giờ bay bao lâu?", "20 phút"),
    ("khach-khong-co-mat.md", "Khách không có mặt (no-show)", "Phải hủy hoặc đổi vé trước mốc nào để không bị tính là no-show?", "3 giờ trước giờ khởi hành"),
    ("khach-khong-co-mat.md", "Khách không có mặt (no-show)", "Quầy làm thủ tục chuyến nội địa đóng lúc nào?", "40 phút trước giờ khởi hành"),
    ("khach-khong-co-mat.md", "Hậu quả theo hạng vé", "Phí no-show cho chặng quốc tế là bao nhiêu?", "1.000.000 VND"),
    ("khach-khong-co-mat.md", "Hậu quả theo hạng vé", "Mỗi chặng nội địa bị no-show thì phải trả phí bao nhiêu?", "500.000 VND", 0),
    ("khach-khong-co-mat.md", "Hậu quả theo hạng vé", "Sau khi lỡ chuyến, tôi phải gửi yêu cầu đổi hoặc hoàn trong bao lâu?", "30 ngày"),
    ("khach-khong-co-mat.md", "Hậu quả theo hạng vé", "Vé Tiết kiệm bị no-show thì tôi còn lấy lại được khoản nào?", "thuế, phí sân bay chưa sử dụng"),
    ("khach-khong-co-mat.md", "Ảnh hưởng đến các chặng còn lại", "Nếu tôi không bay chiều đi thì chiều về sẽ bị sao?", "tự động bị hủy"),
    ("khach-khong-co-mat.md", "Ảnh hưởng đến các chặng còn lại", "Muốn giữ lại chặng về thì tôi phải báo cho hãng qua kênh nào?", "tổng đài hoặc kênh chat"),
    ("khach-khong-co-mat.md", "Ảnh hưởng đến các chặng còn lại", "Chặng về bị hủy tự động thì tôi có được hoàn tiền chặng đó không?", None),
    ("khach-khong-co-mat.md", "Dặm và dịch vụ đi kèm", "Chặng no-show có được tích dặm không?", "không được tích dặm"),
    ("khach-khong-co-mat.md", "Dặm và dịch vụ đi kèm", "Tôi nên hủy vé qua mục nào trên ứng dụng Sen Vàng?", "Quản lý đặt chỗ"),
    ("khach-khong-co-mat.md", "Dặm và dịch vụ đi kèm", "Tôi trễ chuyến vì kẹt xe trên đường ra sân bay thì có được miễn phí no-show không?", None),

    # lam-thu-tuc-tai-san-bay.md
    ("lam-thu-tuc-tai-san-bay.md", "Giờ mở và đóng quầy", "Quầy thủ tục chuyến quốc tế mở cửa lúc nào?", "3 giờ trước giờ khởi hành"),
    ("lam-thu-tuc-tai-san-bay.md", "Giờ mở và đóng quầy", "Bay nội địa thì tôi nên có mặt ở sân bay sớm bao lâu?", "ít nhất 2 giờ"),
    ("lam-thu-tuc-tai-san-bay.md", "Giờ mở và đóng quầy", "Tôi đến sau giờ đóng quầy thì bị xử lý thế nào?", "không có mặt (no-show)"),
    ("lam-thu-tuc-tai-san-bay.md", "Cần chuẩn bị", "Bà bầu từ 28 tuần cần mang thêm giấy gì khi làm thủ tục?", "giấy xác nhận của bác sĩ"),
    ("lam-thu-tuc-tai-san-bay.md", "Cần chuẩn bị", "Làm thủ tục tại quầy sân bay có bị thu phí không?", None),
    ("lam-thu-tuc-tai-san-bay.md", "Quầy ưu tiên", "Hội viên những hạng thẻ nào được làm thủ tục ở quầy ưu tiên?", "hạng Bạc, Vàng và Bạch Kim"),
    ("lam-thu-tuc-tai-san-bay.md", "Quầy ưu tiên", "Ki-ốt tự làm thủ tục có ở những sân bay nào?", "Tân Sơn Nhất và Nội Bài"),
    ("lam-thu-tuc-tai-san-bay.md", "Quầy ưu tiên", "Ki-ốt tự làm thủ tục đóng lúc mấy giờ?", "cùng giờ với quầy làm thủ tục"),
    ("lam-thu-tuc-tai-san-bay.md", "Lên máy bay", "Khoảng bao lâu trước giờ bay thì hãng bắt đầu cho khách lên máy bay?", "40 phút"),
    ("lam-thu-tuc-tai-san-bay.md", "Lên máy bay", "Số cửa ra máy bay được in ở đâu?", "trên thẻ lên máy bay"),
    ("lam-thu-tuc-tai-san-bay.md", "Phòng chờ", "Phòng chờ Bông Sen có ở những sân bay nào?", "Tân Sơn Nhất, Nội Bài và Đà Nẵng"),
    ("lam-thu-tuc-tai-san-bay.md", "Phòng chờ", "Phòng chờ mở cửa từ mấy giờ?", "4 giờ sáng"),
    ("lam-thu-tuc-tai-san-bay.md", "Phòng chờ", "Không đủ hạng thẻ thì mua một lượt vào phòng chờ Bông Sen hết bao nhiêu tiền?", None),

    # lam-thu-tuc-truc-tuyen.md
    ("lam-thu-tuc-truc-tuyen.md", "Thời gian", "Làm thủ tục online mở trước giờ bay bao lâu?", "24 giờ"),
    ("lam-thu-tuc-truc-tuyen.md", "Thời gian", "Làm thủ tục trực tuyến đóng vào lúc nào?", "60 phút trước giờ khởi hành"),
    ("lam-thu-tuc-truc-tuyen.md", "Các bước thực hiện", "Một lần làm thủ tục online được cho tối đa bao nhiêu người?", "9 hành khách"),
    ("lam-thu-tuc-truc-tuyen.md", "Các bước thực hiện", "Thẻ lên máy bay điện tử có loại mã gì?", "mã QR"),
    ("lam-thu-tuc-truc-tuyen.md", "Các bước thực hiện", "Làm thủ tục trực tuyến có mất phí không?", None),
    ("lam-thu-tuc-truc-tuyen.md", "Sau khi làm thủ tục trực tuyến", "Bay quốc tế đã làm thủ tục online rồi, tôi vẫn phải ra quầy để làm gì?", "kiểm tra hộ chiếu và thị thực"),
    ("lam-thu-tuc-truc-tuyen.md", "Sau khi làm thủ tục trực tuyến", "Có hành lý ký gửi trên chuyến nội địa thì phải gửi trước giờ bay bao nhiêu phút?", "40 phút"),
    ("lam-thu-tuc-truc-tuyen.md", "Trường hợp không làm thủ tục trực tuyến được", "Bà bầu từ bao nhiêu tuần thì phải làm thủ tục tại quầy?", "từ 28 tuần trở lên"),
    ("lam-thu-tuc-truc-tuyen.md", "Trường hợp không làm thủ tục trực tuyến được", "Đặt chỗ có từ bao nhiêu người trở lên thì không làm thủ tục online được?", "từ 10 hành khách trở lên"),
    ("lam-thu-tuc-truc-tuyen.md", "Trường hợp không làm thủ tục trực tuyến được", "Đi cùng em bé thì tôi phải trình giấy tờ của bé ở đâu?", "tại cửa kiểm tra an ninh"),
    ("lam-thu-tuc-truc-tuyen.md", "Sự cố", "Hệ thống báo lỗi nên tôi phải làm thủ tục ở quầy, vậy có bị tính phí không?", "không phát sinh phí"),
    ("lam-thu-tuc-truc-tuyen.md", "Sự cố", "Đã làm thủ tục rồi mà cần sửa thông tin thì tôi phải làm gì?", "hủy thủ tục trên ứng dụng"),
    ("lam-thu-tuc-truc-tuyen.md", "Sự cố", "Chọn ghế rộng chân khi làm thủ tục trực tuyến thì giá bao nhiêu?", None),

    # mua-them-hanh-ly.md
    ("mua-them-hanh-ly.md", "Gói hành lý trả trước", "Gói hành lý 20 kg chặng nội địa giá bao nhiêu?", "230.000"),
    ("mua-them-hanh-ly.md", "Gói hành lý trả trước", "Bay quốc tế thì gói 40 kg giá bao nhiêu?", "850.000"),
    ("mua-them-hanh-ly.md", "Gói hành lý trả trước", "Vé Linh hoạt mua thêm gói 15 kg thì tổng cộng được ký gửi bao nhiêu?", "38 kg"),
    ("mua-them-hanh-ly.md", "Gói hành lý trả trước", "Muộn nhất là bao lâu trước giờ bay tôi còn mua được gói hành lý trả trước?", "3 giờ trước giờ khởi hành"),
    ("mua-them-hanh-ly.md", "Hoàn và chuyển gói hành lý", "Phí hành lý quá cước ở sân bay cho chặng nội địa tính thế nào?", "50.000 VND/kg"),
    ("mua-them-hanh-ly.md", "Hoàn và chuyển gói hành lý", "Tôi có thể trả phí quá cước tại quầy bằng hình thức nào?", "tiền mặt hoặc thẻ"),
    ("mua-them-hanh-ly.md", "Hoàn và chuyển gói hành lý", "Đổi vé thì gói hành lý đã mua được xử lý ra sao?", "chuyển miễn phí sang chuyến bay mới"),
    ("mua-them-hanh-ly.md", "Hoàn và chuyển gói hành lý", "Gói hành lý đã mua có thể chuyển cho người khác trong cùng đặt chỗ được không?", None),
    ("mua-them-hanh-ly.md", "Ví dụ so sánh", "Vé Tiết kiệm TP. Hồ Chí Minh – Bangkok mang 20 kg mà trả tại sân bay thì mất bao nhiêu?", "3.000.000 VND"),
    ("mua-them-hanh-ly.md", "Ví dụ so sánh", "Vé Linh hoạt mang 27 kg thì bị vượt bao nhiêu ký?", "4 kg"),
    ("mua-them-hanh-ly.md", "Ví dụ so sánh", "Gửi một con mèo theo chuyến bay nội địa thì phí bao nhiêu?", None),

    # phuong-thuc-thanh-toan.md
    ("phuong-thuc-thanh-toan.md", "Các phương thức được chấp nhận", "Hãng nhận những loại thẻ quốc tế nào?", "Visa, Mastercard, JCB, American Express, UnionPay"),
    ("phuong-thuc-thanh-toan.md", "Các phương thức được chấp nhận", "Thanh toán bằng chuyển khoản ngân hàng áp dụng cho trường hợp nào?", "đặt chỗ giữ chỗ"),
    ("phuong-thuc-thanh-toan.md", "Các phương thức được chấp nhận", "Trả tiền vé bằng thẻ thì hãng có thu thêm phí không?", "không thu phí thanh toán"),
    ("phuong-thuc-thanh-toan.md", "Giữ chỗ và thanh toán sau", "Hãng giữ chỗ cho tôi tối đa được bao lâu?", "24 giờ"),
    ("phuong-thuc-thanh-toan.md", "Giữ chỗ và thanh toán sau", "Ngày bay phải còn bao lâu nữa thì mới được giữ chỗ rồi thanh toán sau?", "hơn 7 ngày"),
    ("phuong-thuc-thanh-toan.md", "Giữ chỗ và thanh toán sau", "Hết thời hạn giữ chỗ mà tôi chưa trả tiền thì sao?", "tự động bị hủy"),
    ("phuong-thuc-thanh-toan.md", "Trả góp 0%", "Đơn hàng tối thiểu bao nhiêu thì được trả góp 0%?", "3.000.000 VND"),
    ("phuong-thuc-thanh-toan.md", "Trả góp 0%", "Trả góp có những kỳ hạn nào?", "3, 6 hoặc 12 tháng"),
    ("phuong-thuc-thanh-toan.md", "Trả góp 0%", "Những ngân hàng nào liên kết trả góp 0% với hãng?", None),
    ("phuong-thuc-thanh-toan.md", "Bảo mật", "Giao dịch thẻ được xác thực bằng cách nào?", "mã OTP hoặc 3-D Secure"),
    ("phuong-thuc-thanh-toan.md", "Bảo mật", "Website chính thức của Sen Vàng Airlines là gì?", "senvang.example"),
    ("phuong-thuc-thanh-toan.md", "Bảo mật", "Dùng thẻ của người thân mua vé thì mỗi lần được thanh toán tối đa bao nhiêu tiền?", None),
    ("phuong-thuc-thanh-toan.md", "Bị trừ tiền nhưng chưa nhận được vé", "Tiền đã bị trừ mà sau bao lâu vẫn chưa có vé thì tôi nên gọi tổng đài?", "sau 2 giờ"),
    ("phuong-thuc-thanh-toan.md", "Bị trừ tiền nhưng chưa nhận được vé", "Giao dịch không thành công thì bao lâu ngân hàng trả lại tiền?", "7 đến 15 ngày làm việc"),
    ("phuong-thuc-thanh-toan.md", "Bị trừ tiền nhưng chưa nhận được vé", "Trên chặng quốc tế, tôi có thể trả tiền mặt bằng ngoại tệ nào?", "USD"),

    # sua-ten-hanh-khach.md
    ("sua-ten-hanh-khach.md", "Trường hợp được sửa", "Tên sai chính tả tối đa bao nhiêu ký tự thì còn được sửa?", "tối đa 3 ký tự"),
    ("sua-ten-hanh-khach.md", "Trường hợp được sửa", "Tên trên vé thiếu dấu tiếng Việt thì có bị coi là sai tên không?", "không bị xem là sai tên"),
    ("sua-ten-hanh-khach.md", "Trường hợp được sửa", "Sửa tên sai 2 ký tự trên vé quốc tế thì hết bao nhiêu tiền?", None),
    ("sua-ten-hanh-khach.md", "Phí sửa tên", "Sửa tên trên vé nội địa sau 24 giờ kể từ lúc đặt thì tốn bao nhiêu?", "200.000 VND"),
    ("sua-ten-hanh-khach.md", "Phí sửa tên", "Phí sửa tên được tính theo từng chặng hay theo khách?", "một lần cho mỗi hành khách"),
    ("sua-ten-hanh-khach.md", "Phí sửa tên", "Vé hạng nào được sửa tên miễn phí bất kể thời điểm?", "Vé Thương gia"),
    ("sua-ten-hanh-khach.md", "Phí sửa tên", "Tôi muốn nhường vé cho người khác đi thay thì phải làm sao?", "hủy vé theo điều kiện hoàn vé và mua vé mới"),
    ("sua-ten-hanh-khach.md", "Thời hạn", "Vé quốc tế muốn sửa tên thì chậm nhất bao lâu trước giờ bay?", "24 giờ trước giờ khởi hành"),
    ("sua-ten-hanh-khach.md", "Thời hạn", "Yêu cầu sửa tên cần gửi kèm ảnh giấy tờ nào?", "căn cước hoặc hộ chiếu"),
    ("sua-ten-hanh-khach.md", "Thời hạn", "Khi đặt vé, tôi phải nhập tên theo thứ tự nào?", "họ, tên đệm và tên"),
    ("sua-ten-hanh-khach.md", "Thời hạn", "Sửa tên qua kênh chat trên ứng dụng có mất phí không?", None),

    # suat-an-tren-may-bay.md
    ("suat-an-tren-may-bay.md", "Theo hạng vé", "Khách Tiết kiệm được uống miễn phí thứ gì?", "Nước lọc", 0),
    ("suat-an-tren-may-bay.md", "Theo hạng vé", "Chặng bay dưới 1 tiếng thì suất ăn Thương gia được thay bằng gì?", "suất ăn nhẹ"),
    ("suat-an-tren-may-bay.md", "Theo hạng vé", "Khách Linh hoạt bay nội địa được phục vụ miễn phí những gì?", "Nước uống và bánh nhẹ"),
    ("suat-an-tren-may-bay.md", "Thực đơn Sen Vàng Café", "Một tô phở bò trên máy bay giá bao nhiêu?", "90.000 VND"),
    ("suat-an-tren-may-bay.md", "Thực đơn Sen Vàng Café", "Ly cà phê sữa đá trên máy bay bán giá bao nhiêu?", "45.000 VND"),
    ("suat-an-tren-may-bay.md", "Thực đơn Sen Vàng Café", "Đặt món ăn trước thì tôi được giảm bao nhiêu?", "10%"),
    ("suat-an-tren-may-bay.md", "Thực đơn Sen Vàng Café", "Tôi phải đặt món trước giờ bay ít nhất bao lâu?", "12 giờ", 0),
    ("suat-an-tren-may-bay.md", "Thực đơn Sen Vàng Café", "Một chai nước suối mua trên máy bay giá bao nhiêu?", None),
    ("suat-an-tren-may-bay.md", "Suất ăn đặc biệt", "Suất ăn đặc biệt phải đặt trước giờ bay bao lâu?", "24 giờ"),
    ("suat-an-tren-may-bay.md", "Suất ăn đặc biệt", "Tôi bay hạng Tiết kiệm mà ăn chay thì làm thế nào?", "đặt trước món chay trong thực đơn Sen Vàng Café"),
    ("suat-an-tren-may-bay.md", "Suất ăn đặc biệt", "Suất ăn trẻ em dành cho bé từ mấy tuổi?", None),
    ("suat-an-tren-may-bay.md", "Dị ứng thực phẩm", "Tiếp viên cung cấp gì để tôi pha sữa cho em bé?", "nước ấm"),
    ("suat-an-tren-may-bay.md", "Dị ứng thực phẩm", "Những món có mùi mạnh nào không được mang lên máy bay để ăn?", "sầu riêng, mắm tôm"),

    # tich-va-doi-dam.md
    ("tich-va-doi-dam.md", "Hai loại dặm", "Dặm thưởng được dùng để làm gì?", "đổi vé và dịch vụ"),
    ("tich-va-doi-dam.md", "Hai loại dặm", "Dặm xét hạng dùng vào việc gì?", "xét lên hạng hoặc duy trì hạng thẻ"),
    ("tich-va-doi-dam.md", "Cách tính dặm", "Mỗi chặng bay được tích ít nhất bao nhiêu dặm?", "250 dặm"),
    ("tich-va-doi-dam.md", "Cách tính dặm", "Chặng Hà Nội – Đà Nẵng được tính bao nhiêu dặm bay?", "390 dặm"),
    ("tich-va-doi-dam.md", "Cách tính dặm", "Bay TP. Hồ Chí Minh – Tokyo thì dặm bay của chặng là bao nhiêu?", "2.690 dặm"),
    ("tich-va-doi-dam.md", "Cách tính dặm", "Hội viên hạng Vàng bay vé Linh hoạt Hà Nội – TP. Hồ Chí Minh nhận được bao nhiêu dặm thưởng?", "1.065 dặm thưởng"),
    ("tich-va-doi-dam.md", "Cách tính dặm", "Chặng Hà Nội – Phú Quốc được tính bao nhiêu dặm bay?", None),
    ("tich-va-doi-dam.md", "Khi nào dặm được cộng", "Dặm được cộng vào tài khoản trong bao lâu sau chuyến bay?", "7 ngày"),
    ("tich-va-doi-dam.md", "Khi nào dặm được cộng", "Quên nhập số hội viên thì tôi còn bao lâu để yêu cầu cộng dặm?", "6 tháng"),
    ("tich-va-doi-dam.md", "Khi nào dặm được cộng", "Dặm thưởng có hiệu lực trong bao lâu?", "36 tháng"),
    ("tich-va-doi-dam.md", "Đổi vé thưởng", "Vé thưởng nội địa hạng phổ thông cần bao nhiêu dặm?", "6.000"),
    ("tich-va-doi-dam.md", "Đổi vé thưởng", "Vé thưởng Thương gia đi Đông Bắc Á tốn bao nhiêu dặm?", "40.000"),
    ("tich-va-doi-dam.md", "Đổi vé thưởng", "Hủy vé thưởng để lấy lại dặm thì mất phí bao nhiêu dặm?", "2.000 dặm"),
    ("tich-va-doi-dam.md", "Đổi vé thưởng", "Đổi vé thưởng đi châu Âu thì cần bao nhiêu dặm?", None),
    ("tich-va-doi-dam.md", "Đổi dặm lấy dịch vụ", "Vào phòng chờ Bông Sen bằng dặm thì tốn bao nhiêu?", "1.500 dặm mỗi lượt"),
    ("tich-va-doi-dam.md", "Đổi dặm lấy dịch vụ", "Dùng dặm nâng hạng lên Thương gia trên chặng nội địa cần bao nhiêu dặm?", "5.000 dặm"),

    # tre-em-di-mot-minh.md
    ("tre-em-di-mot-minh.md", "Độ tuổi áp dụng", "Trẻ dưới mấy tuổi thì không được bay một mình?", "Dưới 5 tuổi"),
    ("tre-em-di-mot-minh.md", "Độ tuổi áp dụng", "Từ bao nhiêu tuổi thì trẻ được bay một mình như người lớn?", "Từ 14 tuổi trở lên"),
    ("tre-em-di-mot-minh.md", "Độ tuổi áp dụng", "Phí dịch vụ cho bé đi một mình trên chặng nội địa là bao nhiêu?", None),
    ("tre-em-di-mot-minh.md", "Phạm vi áp dụng", "Dịch vụ trẻ em đi một mình không áp dụng cho chuyến bay cất cánh trong khung giờ nào?", "từ 22:00 đến 06:00"),
    ("tre-em-di-mot-minh.md", "Phạm vi áp dụng", "Mỗi chuyến bay nhận tối đa bao nhiêu trẻ đi một mình?", "tối đa 4 trẻ"),
    ("tre-em-di-mot-minh.md", "Phạm vi áp dụng", "Phí dịch vụ trẻ đi một mình trên chặng quốc tế là bao nhiêu?", "800.000 VND"),
    ("tre-em-di-mot-minh.md", "Phạm vi áp dụng", "Dịch vụ trẻ em đi một mình chỉ dành cho những hạng vé nào?", "Phổ thông Linh hoạt hoặc Thương gia"),
    ("tre-em-di-mot-minh.md", "Đăng ký", "Phải đăng ký dịch vụ cho bé trước giờ bay bao lâu?", "48 giờ"),
    ("tre-em-di-mot-minh.md", "Đăng ký", "Tôi phải ký mấy bản đơn đề nghị vận chuyển trẻ đi một mình?", "3 bản"),
    ("tre-em-di-mot-minh.md", "Đăng ký", "Người đưa bé ra sân bay phải ở lại đến lúc nào?", "cho đến khi máy bay cất cánh"),
    ("tre-em-di-mot-minh.md", "Đăng ký", "Bé đi một mình được ký gửi bao nhiêu ký hành lý?", None),
    ("tre-em-di-mot-minh.md", "Tại sân bay đến", "Người đón bé phải có mặt trước giờ hạ cánh bao lâu?", "30 phút"),
    ("tre-em-di-mot-minh.md", "Tại sân bay đến", "Nếu không có ai ra đón bé thì chi phí phát sinh do ai trả?", "gia đình"),
    ("tre-em-di-mot-minh.md", "Tại sân bay đến", "Bé đi một mình có được phục vụ suất ăn miễn phí trên máy bay không?", None),

    # tre-em-va-em-be.md
    ("tre-em-va-em-be.md", "Phân loại theo độ tuổi", "Em bé phải được bao nhiêu ngày tuổi thì mới được đi máy bay?", "từ 14 ngày tuổi"),
    ("tre-em-va-em-be.md", "Phân loại theo độ tuổi", "Từ mấy tuổi thì được tính là hành khách người lớn?", "từ 12 tuổi trở lên"),
    ("tre-em-va-em-be.md", "Giá vé", "Vé em bé bằng bao nhiêu phần trăm giá vé người lớn?", "10%"),
    ("tre-em-va-em-be.md", "Giá vé", "Giá vé trẻ em được tính như thế nào?", "90% giá vé người lớn cùng hạng"),
    ("tre-em-va-em-be.md", "Giá vé", "Một người lớn được đi kèm tối đa bao nhiêu em bé?", "1 em bé", 0),
    ("tre-em-va-em-be.md", "Giá vé", "Tại sao mỗi dãy ghế chỉ được có một em bé?", "số mặt nạ dưỡng khí dự phòng có hạn"),
    ("tre-em-va-em-be.md", "Hành lý", "Xe đẩy của bé có thể gửi ở đâu?", "tại cửa ra máy bay"),
    ("tre-em-va-em-be.md", "Hành lý", "Túi đồ dùng của em bé mang lên khoang được nặng tối đa bao nhiêu?", "5 kg"),
    ("tre-em-va-em-be.md", "Chỗ ngồi", "Nôi treo dành cho em bé nặng dưới bao nhiêu ký?", "dưới 10 kg"),
    ("tre-em-va-em-be.md", "Chỗ ngồi", "Loại máy bay nào có nôi treo cho em bé?", "Boeing 787-9"),
    ("tre-em-va-em-be.md", "Chỗ ngồi", "Nôi treo trên máy bay dài bao nhiêu cm?", None),
    ("tre-em-va-em-be.md", "Dịch vụ trên chuyến bay", "Suất ăn trẻ em phải đặt trước bao lâu?", "24 giờ"),
    ("tre-em-va-em-be.md", "Dịch vụ trên chuyến bay", "Trẻ từ mấy tuổi thì được đăng ký Bông Sen Vàng Club?", "từ 2 tuổi"),
    ("tre-em-va-em-be.md", "Dịch vụ trên chuyến bay", "Trẻ em mua đồ ăn trên máy bay có được giảm giá không?", None),

    # van-chuyen-thu-cung.md
    ("van-chuyen-thu-cung.md", "Điều kiện đối với thú cưng", "Chó mèo phải được bao nhiêu tuần tuổi thì mới được bay?", "từ 8 tuần tuổi trở lên"),
    ("van-chuyen-thu-cung.md", "Điều kiện đối với thú cưng", "Trên chặng quốc tế, hãng chỉ nhận chở loại động vật nào?", "chó hỗ trợ người khuyết tật"),
    ("van-chuyen-thu-cung.md", "Điều kiện đối với thú cưng", "Những giống chó nào bị từ chối vì mũi ngắn?", "Pug, Bulldog, Shih Tzu"),
    ("van-chuyen-thu-cung.md", "Yêu cầu về lồng vận chuyển", "Tổng trọng lượng thú cưng và lồng tối đa là bao nhiêu?", "32 kg"),
    ("van-chuyen-thu-cung.md", "Yêu cầu về lồng vận chuyển", "Hai bé mèo con phải dưới bao nhiêu tháng tuổi mới được nhốt chung một lồng?", "dưới 6 tháng tuổi"),
    ("van-chuyen-thu-cung.md", "Yêu cầu về lồng vận chuyển", "Lồng vận chuyển phải thông gió ít nhất mấy mặt?", "ba mặt"),
    ("van-chuyen-thu-cung.md", "Phí vận chuyển", "Chó và lồng nặng tổng cộng 15 kg thì phí vận chuyển bao nhiêu?", "700.000 VND"),
    ("van-chuyen-thu-cung.md", "Phí vận chuyển", "Mỗi chuyến bay nhận tối đa bao nhiêu lồng thú cưng?", "tối đa 3 lồng"),
    ("van-chuyen-thu-cung.md", "Phí vận chuyển", "Mang thú cưng thì tôi phải có mặt ở quầy trước giờ bay ít nhất bao lâu?", "60 phút"),
    ("van-chuyen-thu-cung.md", "Chó hỗ trợ người khuyết tật", "Chó dẫn đường phải nằm ở đâu trong suốt chuyến bay?", "dưới chân hành khách"),
    ("van-chuyen-thu-cung.md", "Chó hỗ trợ người khuyết tật", "Chó hỗ trợ có bắt buộc phải đeo rọ mõm trên máy bay không?", None),
    ("van-chuyen-thu-cung.md", "Trách nhiệm", "Hãng có quyền từ chối chở thú cưng trong những trường hợp nào?", "có dấu hiệu ốm, hung dữ hoặc giấy tờ không hợp lệ"),
    ("van-chuyen-thu-cung.md", "Trách nhiệm", "Thú cưng bị thương trong lúc vận chuyển thì hãng bồi thường bao nhiêu?", None),

    # vat-pham-cam.md
    ("vat-pham-cam.md", "Vật phẩm cấm và hạn chế", "Ai có quyền thu giữ các vật phẩm mang theo không đúng quy định?", "Nhân viên an ninh sân bay"),
    ("vat-pham-cam.md", "Vật phẩm cấm và hạn chế", "Mang vật phẩm cấm lên máy bay thì bị phạt bao nhiêu tiền?", None),
    ("vat-pham-cam.md", "Cấm hoàn toàn (cả xách tay và ký gửi)", "Cồn bao nhiêu độ thì bị cấm mang theo hoàn toàn?", "trên 70 độ"),
    ("vat-pham-cam.md", "Cấm hoàn toàn (cả xách tay và ký gửi)", "Pin lithium vượt quá bao nhiêu Wh thì bị cấm hoàn toàn?", "160 Wh"),
    ("vat-pham-cam.md", "Chỉ được mang theo người (không ký gửi)", "Pin sạc dự phòng loại đến 100 Wh được mang tối đa mấy cục?", "2 chiếc", 0),
    ("vat-pham-cam.md", "Chỉ được mang theo người (không ký gửi)", "Tôi được mang theo bao nhiêu bật lửa lên máy bay?", "Một bật lửa gas nhỏ"),
    ("vat-pham-cam.md", "Chỉ được ký gửi (không mang lên khoang)", "Dao kéo có lưỡi dài trên bao nhiêu thì phải để trong hành lý ký gửi?", "6 cm"),
    ("vat-pham-cam.md", "Chỉ được ký gửi (không mang lên khoang)", "Rượu từ 24 đến 70 độ được ký gửi tối đa bao nhiêu lít?", "5 lít"),
    ("vat-pham-cam.md", "Chất lỏng trong hành lý xách tay", "Bay quốc tế thì mỗi chai chất lỏng xách tay được tối đa bao nhiêu?", "100 ml", 0),
    ("vat-pham-cam.md", "Chất lỏng trong hành lý xách tay", "Trên chuyến nội địa, tổng chất lỏng xách tay được mang tối đa bao nhiêu?", "2 lít"),
    ("vat-pham-cam.md", "Thực phẩm có mùi mạnh", "Muốn ký gửi sầu riêng thì phải đóng gói ra sao?", "đóng gói kín nhiều lớp"),
    ("vat-pham-cam.md", "Thực phẩm có mùi mạnh", "Chưa chắc vật phẩm có được mang hay không thì tôi gửi ảnh hỏi qua kênh nào trên ứng dụng?", "kênh chat"),

    # wifi-va-giai-tri.md
    ("wifi-va-giai-tri.md", "Máy bay có Wi-Fi", "Wi-Fi bắt đầu dùng được khi máy bay lên đến độ cao bao nhiêu?", "khoảng 3.000 m"),
    ("wifi-va-giai-tri.md", "Máy bay có Wi-Fi", "Khi đặt vé, chuyến có Wi-Fi được đánh dấu bằng biểu tượng gì?", "SV Wi-Fi"),
    ("wifi-va-giai-tri.md", "Các gói Wi-Fi", "Gói Wi-Fi Trọn chuyến giá bao nhiêu?", "199.000 VND"),
    ("wifi-va-giai-tri.md", "Các gói Wi-Fi", "Gói Lướt web dùng được trong bao lâu?", "60 phút"),
    ("wifi-va-giai-tri.md", "Các gói Wi-Fi", "Ai được dùng miễn phí gói Trọn chuyến?", "hội viên hạng Bạch Kim"),
    ("wifi-va-giai-tri.md", "Các gói Wi-Fi", "Tốc độ của gói Wi-Fi Nhắn tin là bao nhiêu Mbps?", None),
    ("wifi-va-giai-tri.md", "Cách kết nối", "Tên mạng Wi-Fi trên máy bay là gì?", "SenVang-WiFi"),
    ("wifi-va-giai-tri.md", "Cách kết nối", "Một gói Wi-Fi dùng được cho mấy thiết bị cùng lúc?", "một thiết bị"),
    ("wifi-va-giai-tri.md", "Hoàn tiền Wi-Fi", "Yêu cầu hoàn tiền Wi-Fi phải gửi trong bao lâu sau ngày bay?", "30 ngày"),
    ("wifi-va-giai-tri.md", "Hoàn tiền Wi-Fi", "Hãng xử lý yêu cầu hoàn tiền Wi-Fi trong bao nhiêu ngày?", None),
    ("wifi-va-giai-tri.md", "Giải trí Sen Vàng Play", "Xem phim trên Sen Vàng Play có phải mua gói Wi-Fi không?", "không cần mua gói Wi-Fi"),
    ("wifi-va-giai-tri.md", "Giải trí Sen Vàng Play", "Hạng ghế nào được phát tai nghe miễn phí?", "hạng Thương gia"),
    ("wifi-va-giai-tri.md", "Sạc thiết bị", "Ghế Thương gia có thêm gì để sạc thiết bị?", "ổ cắm điện"),
    ("wifi-va-giai-tri.md", "Sạc thiết bị", "Điện thoại phải để ở chế độ nào trong suốt chuyến bay?", "chế độ máy bay"),
]


def split_contexts(text: str) -> list[str]:
    """Cut a document at its `## ` headings, joining sections shorter than MIN_CONTEXT with the next."""
    starts = [0] + [m.start() for m in re.finditer(r"(?m)^## ", text)]
    ends = starts[1:] + [len(text)]
    spans, cur = [], None
    for start, end in zip(starts, ends):
        cur = (cur[0], end) if cur else (start, end)
        if len(text[cur[0]:cur[1]].strip()) >= MIN_CONTEXT:
            spans.append(cur)
            cur = None
    if cur:  # a short last section joins the one before it
        if spans:
            spans[-1] = (spans[-1][0], cur[1])
        else:
            spans.append(cur)
    return [text[s:e].strip() for s, e in spans]


def headings(context: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"(?m)^#{1,3} (.+)$", context)]


def whole_word_occurrences(context: str, answer: str) -> list[int]:
    """Start offsets of answer in context, leaving out those inside a longer word or number ("50.000" in "150.000")."""
    out, i = [], context.find(answer)
    while i >= 0:
        end = i + len(answer)
        if not (i > 0 and context[i - 1].isalnum()) and not (end < len(context) and context[end].isalnum()):
            out.append(i)
        i = context.find(answer, i + 1)
    return out


def fail(n: int, entry: tuple, message: str) -> None:
    sys.exit(f"make_extractive.py: question {n} ({entry[0]}: {entry[2]!r}): {message}")


def build() -> list[dict]:
    docs: dict[str, list[str]] = {}
    for path in sorted(DOCS.glob("*.md")):
        docs[path.name] = split_contexts(path.read_text(encoding="utf-8"))
    for name, contexts in docs.items():
        for c in contexts:
            if not MIN_CONTEXT <= len(c) <= MAX_CONTEXT:
                sys.exit(f"make_extractive.py: {name}: a context of {len(c)} characters ({headings(c)[:1]})")

    records, seen, per_doc = [], set(), collections.Counter()
    for n, entry in enumerate(QUESTIONS, 1):
        if len(entry) not in (4, 5):
            fail(n, entry, "expected (document, section, question, answer[, occurrence])")
        doc, section, question, answer = entry[:4]
        occurrence = entry[4] if len(entry) == 5 else None
        if doc not in docs:
            fail(n, entry, f"no document {doc} in {DOCS}")
        if question in seen:
            fail(n, entry, "the same question is asked twice")
        seen.add(question)
        matches = [c for c in docs[doc] if section in headings(c)]
        if len(matches) != 1:
            fail(n, entry, f"section {section!r} names {len(matches)} contexts of {doc}, not one")
        context = matches[0]
        if answer is None:
            texts, starts = [], []
        else:
            if not answer.strip() or answer != answer.strip():
                fail(n, entry, f"the answer {answer!r} is empty or has spaces at its ends")
            if not 1 <= len(answer.split()) <= MAX_ANSWER_WORDS:
                fail(n, entry, f"the answer {answer!r} is not 1-{MAX_ANSWER_WORDS} words")
            found = whole_word_occurrences(context, answer)
            if not found:
                fail(n, entry, f"the answer {answer!r} does not occur verbatim (as whole words) in the context "
                               f"of section {section!r}")
            if occurrence is None and len(found) > 1:
                fail(n, entry, f"the answer {answer!r} occurs {len(found)} times in its context; give an occurrence index")
            k = occurrence or 0
            if not 0 <= k < len(found):
                fail(n, entry, f"occurrence {k} of {answer!r} asked for, but it occurs {len(found)} times")
            start = found[k]
            if context[start:start + len(answer)] != answer:  # the check the output promises
                fail(n, entry, f"the answer {answer!r} is not at offset {start}")
            texts, starts = [answer], [start]
        title = doc.removesuffix(".md")
        per_doc[title] += 1
        records.append({"id": f"{title}-{per_doc[title]:02d}", "title": title, "context": context,
                        "question": question, "answers": {"text": texts, "answer_start": starts}})
    return records


def main() -> None:
    records = build()
    with OUT.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    per_doc = collections.Counter(r["title"] for r in records)
    missing = sorted(p.stem for p in DOCS.glob("*.md") if p.stem not in per_doc)
    empty = sum(1 for r in records if not r["answers"]["text"])
    print(f"wrote {OUT.name}: {len(records)} questions, {len(records) - empty} answerable, "
          f"{empty} without an answer ({empty / len(records):.0%}); {len(per_doc)} documents, "
          f"{min(per_doc.values())}-{max(per_doc.values())} questions each; "
          f"{len({r['context'] for r in records})} contexts")
    if missing:
        sys.exit(f"make_extractive.py: no questions for {', '.join(missing)}")


if __name__ == "__main__":
    main()
