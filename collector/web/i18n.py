"""Vietnamese (the default) and English: the page's words, and dates and numbers in the local format.

The catalogue is keyed by the English text; a missing Vietnamese entry shows the English (a test
checks that every word the templates use has its Vietnamese). Babel formats dates and numbers.
"""

from __future__ import annotations

import datetime as dt

from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal

LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT = "vi"
LOCALES = {"vi": "vi_VN", "en": "en_GB"}
# As people write them: 02/12/2026 08:05 in Vietnam (CLDR's short Vietnamese form is 08:05 2/12/26).
MOMENT = {"vi": "dd/MM/yyyy HH:mm", "en": "d MMM yyyy, HH:mm"}

VI: dict[str, str] = {
    "Check-in collector": "Hệ thống quét mã QR",
    "Today": "Hôm nay",
    "Fleet": "Thiết bị",
    "History": "Lịch sử",
    "Trace": "Truy vết",
    "Locations": "Địa điểm",
    "Audit log": "Nhật ký truy cập",
    "Log in": "Đăng nhập",
    "Log out": "Đăng xuất",
    "User name": "Tên đăng nhập",
    "Password": "Mật khẩu",
    "Wrong user name or password.": "Sai tên đăng nhập hoặc mật khẩu.",
    "Too many failed attempts: try again in %(n)s seconds.": (
        "Đăng nhập sai quá nhiều lần: thử lại sau %(n)s giây."
    ),
    "The form has expired or was not sent from this page: please try again.": (
        "Biểu mẫu đã hết hạn hoặc không được gửi từ trang này: vui lòng thử lại."
    ),
    "Request refused": "Yêu cầu bị từ chối",
    "Your role may not open this page.": "Vai trò của bạn không được mở trang này.",
    "Page not found": "Không tìm thấy trang",
    "Signed in as": "Đăng nhập với",
    "role": "vai trò",
    "Compliance on": "Tình hình quét mã ngày",
    "Final": "Chính thức",
    "Provisional": "Tạm thời",
    "Updated": "Cập nhật lúc",
    "This page refreshes itself every %(n)s seconds.": "Trang tự làm mới sau mỗi %(n)s giây.",
    "On the roster": "Trong danh sách",
    "Scanned": "Đã quét",
    "Not scanned": "Chưa quét",
    "Unknown": "Chưa rõ",
    "Visitors": "Khách",
    "Devices holding the report back": "Thiết bị chưa gửi đủ dữ liệu",
    "Until these devices confirm the day, their riders and workers are unknown, not absent.": (
        "Khi các thiết bị này chưa xác nhận đủ dữ liệu trong ngày, người đi xe/qua cổng của chúng là"
        " chưa rõ, không phải vắng mặt."
    ),
    "Device": "Thiết bị",
    "Location": "Địa điểm",
    "Reason": "Lý do",
    "Not yet scanned, by team": "Chưa quét, theo tổ",
    "Not yet scanned, by bus or gate": "Chưa quét, theo xe hoặc cổng",
    "By team": "Theo tổ",
    "By bus or gate": "Theo xe hoặc cổng",
    "Team": "Tổ",
    "Bus or gate": "Xe hoặc cổng",
    "Employee no.": "Mã NV",
    "Name": "Họ tên",
    "State": "Trạng thái",
    "Held back by": "Chờ thiết bị",
    "Everyone on the roster has scanned.": "Mọi người trong danh sách đã quét.",
    "Nobody on the roster yet: qr-collector roster import FILE.": (
        "Chưa có danh sách nhân viên: qr-collector roster import FILE."
    ),
    "Counts under %(n)s people are shown as <%(n)s.": "Số dưới %(n)s người được hiển thị là <%(n)s.",
    "Total": "Tổng",
    "Kind": "Loại",
    "Plate": "Biển số",
    "Address": "Địa chỉ",
    "Last heartbeat": "Tín hiệu gần nhất",
    "Backlog": "Chờ gửi",
    "Open gaps": "Khoảng thiếu",
    "Known losses": "Mất dữ liệu",
    "Version": "Phiên bản",
    "online": "trực tuyến",
    "offline": "ngoại tuyến",
    "stale": "mất tín hiệu",
    "unknown": "chưa rõ",
    "never": "chưa bao giờ",
    "No device has reported yet.": "Chưa có thiết bị nào báo về.",
    "Offline and stale devices first.": "Thiết bị ngoại tuyến và mất tín hiệu được xếp trước.",
    "From": "Từ ngày",
    "To": "Đến ngày",
    "All locations": "Tất cả địa điểm",
    "All teams": "Tất cả tổ",
    "Show": "Xem",
    "Purpose of the export": "Mục đích xuất file",
    "Export CSV": "Xuất file CSV",
    "Export XLSX": "Xuất file Excel",
    "Time": "Thời gian",
    "Direction": "Chiều",
    "Masked ID": "Mã che",
    "Code": "Loại mã",
    "Clock": "Đồng hồ",
    "Scans": "Lượt quét",
    "People": "Số người",
    "No check-ins for these filters.": "Không có lượt quét nào theo bộ lọc này.",
    "Showing the first %(n)s rows; the export holds them all.": (
        "Hiển thị %(n)s dòng đầu; file xuất có đầy đủ."
    ),
    "%(n)s check-ins": "%(n)s lượt quét",
    "Exports are masked and written to the audit log.": "File xuất được che mã và ghi vào nhật ký truy cập.",
    "Case number": "Số hồ sơ ca bệnh",
    "Subject (visitor's pseudonym)": "Mã định danh ẩn (khách)",
    "Run the trace": "Truy vết",
    "Every trace is written to the audit log with its case number.": (
        "Mỗi lần truy vết được ghi vào nhật ký truy cập cùng số hồ sơ."
    ),
    "Visits": "Lần có mặt",
    "Contacts": "Người tiếp xúc",
    "Overlap (min)": "Thời gian chung (phút)",
    "Where": "Nơi",
    "Presence": "Cách tính",
    "Start": "Bắt đầu",
    "End": "Kết thúc",
    "visitor": "khách",
    "No contact in this period.": "Không có người tiếp xúc trong khoảng thời gian này.",
    "Trace of %(who)s: %(visits)s visits, %(people)s people co-present.": (
        "Truy vết %(who)s: %(visits)s lần có mặt, %(people)s người có mặt cùng."
    ),
    "Ward": "Phường/Xã",
    "District": "Quận/Huyện",
    "Province": "Tỉnh/Thành phố",
    "Devices": "Thiết bị",
    "First check-in": "Lượt quét đầu",
    "Last check-in": "Lượt quét cuối",
    "No location yet.": "Chưa có địa điểm.",
    "The chain holds: %(n)s rows verified.": "Chuỗi nhật ký toàn vẹn: đã kiểm %(n)s dòng.",
    "The chain is broken at row %(row)s: %(problem)s": "Chuỗi nhật ký bị hỏng ở dòng %(row)s: %(problem)s",
    "Who": "Người thực hiện",
    "Action": "Thao tác",
    "Purpose": "Mục đích",
    "Query": "Truy vấn",
    "Rows": "Số dòng",
    "Language": "Ngôn ngữ",
    "Error": "Lỗi",
    "bus": "xe buýt",
    "door": "cửa",
    "gate": "cổng",
    "workshop": "xưởng",
    "other": "khác",
    "in": "vào",
    "out": "ra",
    "synced": "đã đồng bộ",
    "unsynced": "chưa đồng bộ",
    "trip": "chuyến xe",
    "dwell": "thời gian lưu lại",
    "shift": "ca làm",
    "scanned": "đã quét",
    "not scanned": "chưa quét",
}


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT


def gettext(lang: str, text: str, **values: object) -> str:
    words = VI.get(text, text) if lang == "vi" else text
    return words % values if values else words


def number(lang: str, value: float) -> str:
    return format_decimal(value, locale=LOCALES[lang])


def when(lang: str, value: dt.datetime | None, tz: dt.tzinfo) -> str:
    if value is None:
        return "–"
    return format_datetime(value.astimezone(tz), MOMENT[lang], locale=LOCALES[lang])


def day(lang: str, value: dt.date) -> str:
    return format_date(value, "full", locale=LOCALES[lang])


def clock(lang: str, value: dt.datetime, tz: dt.tzinfo) -> str:
    return format_time(value.astimezone(tz), "medium", locale=LOCALES[lang])
