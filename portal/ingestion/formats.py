"""What kind of file this is, decided by content, and refusing hostile ones before any parser runs.

Names and browsers' MIME types lie, so xlsx, xls and csv are told apart by their bytes; zip and XML
bombs and encrypted workbooks are refused from the zip directory alone.
"""

from __future__ import annotations

import codecs
import io
import logging
import zipfile

from xlrd.compdoc import CompDoc

from portal.errors import InvalidFile, UnsupportedFile

log = logging.getLogger(__name__)

#: Limits checked on the zip directory of an xlsx before any parser runs.
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 1024 * 1024
MAX_ZIP_MEMBERS = 10_000
CSV_DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
#: A csv has a delimiter in one of its first lines.
_CSV_SNIFF_LINES = 10
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_DTD_MARKERS = tuple(m.encode(enc) for m in ("<!DOCTYPE", "<!ENTITY", "<!doctype", "<!entity")
                     for enc in ("utf-8", "utf-16-le", "utf-16-be"))
FIX_PASSWORD = ("The workbook is password-protected. Open it in Excel, remove the password "
                 "(File > Info > Protect Workbook > Encrypt with Password, clear it), save and upload again.")
FIX_RESAVE = "Open it in Excel (or Google Sheets), save it again as .xlsx or .csv and upload the new file."


def sniff_format(data: bytes) -> str:
    """Tell xlsx, xls and csv apart by content, because names and browsers' MIME types lie."""
    if not data:
        raise InvalidFile("The file is empty (0 bytes). Export the customer list again and upload "
                          "the saved file.")
    if data.startswith(_ZIP_MAGICS):
        return _sniff_zip(data)
    if data.startswith(_OLE2_MAGIC):
        return _sniff_ole2(data)
    if _looks_like_csv(data):
        return "csv"
    raise UnsupportedFile("This file is not an Excel workbook (.xlsx, .xls) or a CSV file. Save the "
                          "customer list from Excel as .xlsx or .csv and upload that.")


def _sniff_zip(data: bytes) -> str:
    """A zip is an xlsx only when it holds a workbook part."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except Exception as exc:  # BadZipFile, truncated directory, struct errors
        log.info("zip directory unreadable (%s)", type(exc).__name__)
        raise InvalidFile("The .xlsx file is damaged or incomplete (perhaps the download or upload "
                          f"was cut short). {FIX_RESAVE}", {"error_type": type(exc).__name__}) from exc
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        raise UnsupportedFile("This is a binary Excel workbook (.xlsb). Save it as .xlsx "
                              "(File > Save As > Excel Workbook) and upload that.")
    raise UnsupportedFile("This is a zip archive but not an Excel workbook (a Word, OpenDocument or "
                          "other file?). Save the customer list from Excel as .xlsx and upload that.")


def _sniff_ole2(data: bytes) -> str:
    """Old-format Office files are OLE2 containers; encrypted xlsx files are too."""
    try:
        streams = {entry.name for entry in CompDoc(data, logfile=io.StringIO()).dirlist}
    except Exception as exc:  # CompDocError, IndexError, struct.error on damaged containers
        log.info("OLE2 directory unreadable (%s)", type(exc).__name__)
        raise InvalidFile(f"The .xls file is damaged or incomplete. {FIX_RESAVE}",
                          {"error_type": type(exc).__name__}) from exc
    if "EncryptedPackage" in streams or "EncryptionInfo" in streams:
        raise InvalidFile(FIX_PASSWORD)
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    raise UnsupportedFile("This is an older Office file but not an Excel workbook (a Word document?). "
                          "Save the customer list from Excel as .xlsx and upload that.")


def _looks_like_csv(data: bytes) -> bool:
    """Text in an encoding we read, with a delimiter in one of its first lines."""
    try:
        sample = decode(data[:SNIFF_BYTES], final=len(data) <= SNIFF_BYTES)
    except UnicodeDecodeError:
        return False
    if any(ch < " " and ch not in "\t\r\n\f" for ch in sample):
        return False
    head = sample.lstrip().lower()
    if head.startswith(("<html", "<!doctype", "<?xml", "<table", "{", "[")):
        raise UnsupportedFile("This is a web page, XML or JSON file, not a spreadsheet (some systems "
                              "export HTML with an .xls name). Open it in Excel, save it as .xlsx and "
                              "upload that.")
    lines = [line for line in sample.splitlines() if line.strip()][:_CSV_SNIFF_LINES]
    return any(d in line for line in lines for d in CSV_DELIMITERS)


def decode(data: bytes, *, final: bool = True) -> str:
    """Decode text the way Excel users save it: UTF-16 with BOM, UTF-8 (BOM or not), else cp1252."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return codecs.getincrementaldecoder("utf-16")().decode(data, final=final)
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=final)
    except UnicodeDecodeError:
        return data.decode("cp1252")


def check_zip(data: bytes) -> None:
    """Refuse zip bombs from the directory alone, then refuse XML with a DTD (entity bombs).

    The checks read the central directory and at most the first 64 KB of each XML part; nothing
    is parsed. calamine has no bomb guard of its own, but it does stop at a member's declared size,
    so capping the declared sizes bounds what it can inflate.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise InvalidFile(f"The workbook has {len(infos):,} internal parts, more than the "
                              f"{MAX_ZIP_MEMBERS:,} a real spreadsheet has. {FIX_RESAVE}")
        total = sum(info.file_size for info in infos)
        if total > MAX_UNCOMPRESSED_BYTES:
            raise InvalidFile(f"The workbook unpacks to {total / 2**20:,.0f} MB, more than the "
                              f"{MAX_UNCOMPRESSED_BYTES / 2**20:,.0f} MB we accept. Remove unused sheets, "
                              "images and formatting, or split the customers into smaller files and "
                              "upload those.",
                              {"uncompressed_mb": round(total / 2**20)})
        for info in infos:
            if info.flag_bits & 0x1:
                raise InvalidFile(FIX_PASSWORD)
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
                raise InvalidFile("The workbook is packed far more tightly than any real spreadsheet "
                                  f"(one part expands {ratio:,.0f} times), so we refused to open it. "
                                  f"{FIX_RESAVE}", {"compression_ratio": round(ratio)})
        for info in infos:
            if info.filename.endswith((".xml", ".rels", ".vml")):
                with zf.open(info) as part:
                    head = part.read(SNIFF_BYTES)
                if any(marker in head for marker in _DTD_MARKERS):
                    raise InvalidFile("The workbook contains XML entity declarations, which Excel never "
                                      f"writes and which can be used to attack servers. {FIX_RESAVE}")
