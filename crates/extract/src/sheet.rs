//! Spreadsheets (xlsx, xlsm, xlsb, xls, ods through calamine) and CSV (the csv crate): every
//! sheet becomes Markdown tables, cut into sections of at most `ROWS_PER_SECTION` rows that each
//! repeat the header row, so a chunk of row 5,000 still says what its columns are.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader, Sheets, open_workbook_auto_from_rs};

use crate::package::{OLE_MAGIC, Package};
use crate::sections::SectionBuilder;
use crate::text::{decode, markdown_table};
use crate::{ExtractError, Extracted, Limits};

/// Rows (besides the header) in one section.
const ROWS_PER_SECTION: usize = 100;
/// Text in one section before it is cut, whatever the row count (rows of long text cells).
const BYTES_PER_SECTION: usize = 16 * 1024;

/// Cells (rows × used columns) one workbook may expand to. Sparse sheets can describe huge
/// tables in a few bytes (a cell at A1 and one at XFD1048576), and a dense table of them would
/// not fit in memory.
const MAX_CELLS: usize = 10_000_000;

/// A sheet's non-empty cells: row number (0-based) → (column, text).
type SparseRows = BTreeMap<u32, Vec<(u32, String)>>;

pub(crate) fn extract_workbook(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    if bytes.starts_with(b"PK") {
        // calamine inflates the members it reads without a bound; inflate everything once here,
        // counting, so a zip bomb stops at the limit instead of in calamine.
        let mut package = Package::open(bytes, "spreadsheet", limits.max_unpacked_bytes)?;
        package.check_all()?;
        if let Some(content) = package.read_text("content.xml")? {
            check_ods_repeats(&content)?;
        }
    } else if bytes.starts_with(OLE_MAGIC) {
        // An OLE file with an `EncryptionInfo` stream is an xlsx saved with a password.
        if contains_utf16(bytes, "EncryptionInfo") {
            return Err(ExtractError::Encrypted);
        }
    } else {
        return Err(ExtractError::Corrupt(
            "not a valid spreadsheet: the file is neither an Excel (xlsx, xls) nor an OpenDocument (ods) workbook"
                .to_string(),
        ));
    }
    let mut workbook =
        open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|error| workbook_error(&error))?;
    let mut builder = SectionBuilder::new();
    let mut cells = 0usize;
    for name in workbook.sheet_names() {
        let sparse = read_sheet(&mut workbook, &name)?;
        let rows = dense(sparse, &name, &mut cells)?;
        table_sections(
            &mut builder,
            Some(&format!("Sheet: {name}")),
            rows.into_iter(),
        );
    }
    Ok(Extracted {
        title: None,
        sections: builder.finish(),
    })
}

/// Reads a sheet's non-empty cells. xlsx and xlsb are streamed cell by cell (calamine's
/// `worksheet_range` allocates the whole bounding box); xls (at most 65,536 × 256) and ods
/// (checked by `check_ods_repeats`) go through the range.
fn read_sheet(
    workbook: &mut Sheets<Cursor<&[u8]>>,
    name: &str,
) -> Result<SparseRows, ExtractError> {
    let mut rows = SparseRows::new();
    let mut add = |(row, column): (u32, u32), value: Data| {
        let text = cell_text(&value);
        if !text.trim().is_empty() {
            rows.entry(row).or_default().push((column, text));
        }
    };
    match workbook {
        Sheets::Xlsx(xlsx) => {
            let mut reader = xlsx
                .worksheet_cells_reader(name)
                .map_err(|e| workbook_error(&e.into()))?;
            while let Some(cell) = reader.next_cell().map_err(|e| workbook_error(&e.into()))? {
                add(cell.get_position(), Data::from(cell.get_value().clone()));
            }
        }
        Sheets::Xlsb(xlsb) => {
            let mut reader = xlsb
                .worksheet_cells_reader(name)
                .map_err(|e| workbook_error(&e.into()))?;
            while let Some(cell) = reader.next_cell().map_err(|e| workbook_error(&e.into()))? {
                add(cell.get_position(), Data::from(cell.get_value().clone()));
            }
        }
        other => {
            let range = other
                .worksheet_range(name)
                .map_err(|error| workbook_error(&error))?;
            let (first_row, first_column) = range.start().unwrap_or((0, 0));
            for (index, cells) in range.rows().enumerate() {
                for (column, cell) in cells.iter().enumerate() {
                    if !matches!(cell, Data::Empty) {
                        add(
                            (first_row + index as u32, first_column + column as u32),
                            cell.clone(),
                        );
                    }
                }
            }
        }
    }
    Ok(rows)
}

/// Lays sparse cells out as rows over the columns that hold anything, numbered 1-based as the
/// spreadsheet shows them; refuses layouts past `MAX_CELLS` in the whole workbook.
fn dense(
    sparse: SparseRows,
    sheet: &str,
    cells: &mut usize,
) -> Result<Vec<(usize, Vec<String>)>, ExtractError> {
    let mut used: Vec<u32> = sparse
        .values()
        .flat_map(|row| row.iter().map(|(column, _)| *column))
        .collect();
    used.sort_unstable();
    used.dedup();
    *cells = cells.saturating_add(sparse.len().saturating_mul(used.len()));
    if *cells > MAX_CELLS {
        return Err(ExtractError::TooLarge(format!(
            "the sheet \"{sheet}\" spans {} rows × {} columns, more cells than the {MAX_CELLS} allowed",
            sparse.len(),
            used.len()
        )));
    }
    Ok(sparse
        .into_iter()
        .map(|(row, values)| {
            let mut cells = vec![String::new(); used.len()];
            for (column, text) in values {
                if let Ok(index) = used.binary_search(&column) {
                    cells[index] = text;
                }
            }
            (row as usize + 1, cells)
        })
        .collect())
}

/// ODS compresses repeated rows and cells into `number-rows-repeated` / `number-columns-repeated`
/// attributes, and calamine expands them (up to 100 million cells): estimate the expansion of
/// repeated rows that hold values and refuse it past `MAX_CELLS`.
fn check_ods_repeats(content: &str) -> Result<(), ExtractError> {
    let mut expanded = 0usize;
    let mut rest = content;
    while let Some(start) = rest.find("<table:table-row") {
        let row = &rest[start..];
        let end = row.find("</table:table-row>").unwrap_or(row.len());
        let (element, body) = row[..end].split_once('>').unwrap_or((&row[..end], ""));
        rest = &row[end.max(1)..];
        if !body.contains("office:value") {
            continue;
        }
        let repeats = repeated(element, "table:number-rows-repeated");
        let columns: usize = body
            .split("<table:table-cell")
            .skip(1)
            .map(|cell| {
                let tag = cell.split('>').next().unwrap_or_default();
                repeated(tag, "table:number-columns-repeated")
            })
            .fold(0usize, usize::saturating_add);
        expanded = expanded.saturating_add(repeats.saturating_mul(columns.max(1)));
        if expanded > MAX_CELLS {
            return Err(ExtractError::TooLarge(format!(
                "the spreadsheet's repeated rows expand to more cells than the {MAX_CELLS} allowed"
            )));
        }
    }
    Ok(())
}

/// The value of a `name="N"` repeat attribute in a tag, 1 when absent.
fn repeated(tag: &str, name: &str) -> usize {
    tag.find(name)
        .and_then(|at| tag[at + name.len()..].split('"').nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

fn workbook_error(error: &calamine::Error) -> ExtractError {
    let message = error.to_string();
    let lower = message.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("encrypt") {
        ExtractError::Encrypted
    } else {
        ExtractError::Corrupt(format!("not a valid spreadsheet: {message}"))
    }
}

fn contains_utf16(bytes: &[u8], needle: &str) -> bool {
    let needle: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_slice())
}

/// A cell as a person reads it: whole numbers without ".0", dates as ISO dates, booleans as
/// Excel writes them.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => text.clone(),
        Data::Float(value) => number(*value),
        Data::Int(value) => value.to_string(),
        Data::Bool(value) => if *value { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(value) if value.is_datetime() => {
            let (year, month, day, hour, minute, second, _) = value.to_ymd_hms_milli();
            let time = (hour, minute, second) != (0, 0, 0);
            if value.as_f64() < 1.0 && time {
                format!("{hour:02}:{minute:02}:{second:02}")
            } else if time {
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
            } else {
                format!("{year:04}-{month:02}-{day:02}")
            }
        }
        Data::DateTime(value) => {
            let seconds = (value.as_f64() * 86_400.0).round() as i64;
            format!(
                "{}:{:02}:{:02}",
                seconds / 3600,
                (seconds / 60) % 60,
                seconds % 60
            )
        }
        other => other.to_string(),
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let plain = value.to_string();
    if plain.len() <= 16 {
        return plain;
    }
    // Binary noise (0.30000000000000004): show what Excel shows, 15 significant digits.
    let digits = 15usize.saturating_sub(value.abs().log10().floor().max(0.0) as usize + 1);
    let rounded = format!("{value:.digits$}");
    rounded
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

pub(crate) fn extract_csv(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = decode(bytes);
    let delimiter = sniff_delimiter(&text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record =
            record.map_err(|error| ExtractError::Corrupt(format!("not a valid CSV: {error}")))?;
        rows.push((
            index + 1,
            record.iter().map(str::to_string).collect::<Vec<String>>(),
        ));
    }
    let mut builder = SectionBuilder::new();
    table_sections(&mut builder, None, rows.into_iter());
    Ok(Extracted {
        title: None,
        sections: builder.finish(),
    })
}

/// The delimiter that splits the first lines into the same, largest number of fields:
/// comma, semicolon (European Excel exports), tab or pipe.
fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let mut best = (b',', 0usize);
    for delimiter in [b',', b';', b'\t', b'|'] {
        let counts: Vec<usize> = lines
            .iter()
            .map(|line| count_outside_quotes(line, delimiter))
            .collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        let consistent = counts.iter().filter(|&&c| c == first).count() * 10 >= counts.len() * 8;
        if first > best.1 && consistent {
            best = (delimiter, first);
        }
    }
    best.0
}

fn count_outside_quotes(line: &str, delimiter: u8) -> usize {
    let mut quoted = false;
    let mut count = 0;
    for &byte in line.as_bytes() {
        if byte == b'"' {
            quoted = !quoted;
        } else if byte == delimiter && !quoted {
            count += 1;
        }
    }
    count
}

/// Writes numbered rows as Markdown tables: empty rows and trailing empty cells dropped, the
/// first row taken as header, cut every `ROWS_PER_SECTION` rows or `BYTES_PER_SECTION` bytes.
fn table_sections(
    builder: &mut SectionBuilder,
    label: Option<&str>,
    rows: impl Iterator<Item = (usize, Vec<String>)>,
) {
    let mut rows = rows.filter_map(|(number, mut cells)| {
        while cells.last().is_some_and(|c| c.trim().is_empty()) {
            cells.pop();
        }
        (!cells.is_empty()).then_some((number, cells))
    });
    let Some((_, header)) = rows.next() else {
        return;
    };
    let mut chunks: Vec<(usize, usize, String)> = Vec::new();
    let mut table = vec![header.clone()];
    let mut first = 0usize;
    let mut last = 0usize;
    let mut size = 0usize;
    for (number, cells) in rows {
        if table.len() == 1 {
            first = number;
        }
        size += cells.iter().map(String::len).sum::<usize>();
        table.push(cells);
        last = number;
        if table.len() > ROWS_PER_SECTION || size > BYTES_PER_SECTION {
            chunks.push((first, last, markdown_table(&table)));
            table = vec![header.clone()];
            size = 0;
        }
    }
    if table.len() > 1 || chunks.is_empty() {
        chunks.push((first, last, markdown_table(&table)));
    }
    let single = chunks.len() == 1;
    for (first, last, text) in chunks {
        let label = match (label, single) {
            (Some(label), true) => Some(label.to_string()),
            (Some(label), false) => Some(format!("{label}, rows {first}–{last}")),
            (None, true) => None,
            (None, false) => Some(format!("Rows {first}–{last}")),
        };
        builder.place(None, label);
        builder.block(&text);
        builder.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_excel() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(1234.5), "1234.5");
    }

    #[test]
    fn sniffs_semicolons() {
        assert_eq!(sniff_delimiter("a;b;c\n1;2,5;3\n"), b';');
        assert_eq!(sniff_delimiter("a,b\n1,2\n"), b',');
        assert_eq!(sniff_delimiter("a\tb\n1\t2\n"), b'\t');
    }
}
