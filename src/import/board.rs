//! The progress of `import -f` on standard error: one row per import. On a terminal the rows are
//! redrawn in place; otherwise each change is a line of its own (`name: …` when there are
//! several imports); with `--log-format json` each change is a JSON event, so standard error
//! stays JSON only.

use std::io::Write;
use std::sync::{Mutex, PoisonError};

use crate::api::image_import::{ImageImportStatus, Phase};

/// How the board draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Rows redrawn in place, cut at `width` characters so none wraps (a wrapped row would
    /// throw the redraw off).
    Terminal {
        /// The terminal's width.
        width: usize,
    },
    /// A plain line per change.
    Lines,
    /// A JSON event per change, through the log.
    Json,
}

impl Style {
    /// The style for standard error as it is: `json` when the log is JSON, a terminal's width
    /// from `COLUMNS` (120 when unset).
    pub fn for_stderr(json: bool) -> Self {
        use std::io::IsTerminal;
        if json {
            Self::Json
        } else if std::io::stderr().is_terminal() {
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .filter(|w| *w >= 20)
                .unwrap_or(120);
            Self::Terminal { width }
        } else {
            Self::Lines
        }
    }
}

/// The rows of the imports of one run.
#[derive(Debug)]
pub struct Board {
    style: Style,
    rows: Vec<Row>,
    /// A terminal frame is on the screen (the cursor at the end of its last row).
    drawn: bool,
}

#[derive(Debug)]
struct Row {
    name: String,
    line: Option<String>,
}

impl Board {
    /// A board with a row for each name, in order.
    pub fn new(names: Vec<String>, style: Style) -> Self {
        Self {
            style,
            rows: names
                .into_iter()
                .map(|name| Row { name, line: None })
                .collect(),
            drawn: false,
        }
    }

    /// Shows `status` on `row` when it says something new.
    pub fn show(&mut self, row: usize, status: &ImageImportStatus) {
        let line = line(status);
        let Some(slot) = self.rows.get_mut(row) else {
            return;
        };
        if slot.line.as_deref() == Some(line.as_str()) {
            return;
        }
        slot.line = Some(line.clone());
        match self.style {
            Style::Terminal { .. } => {
                // Under the screen's lock, so a log line cannot come between.
                let mut screen = screen();
                write_err(&self.frame());
                self.drawn = true;
                *screen = Screen {
                    rows: self.rows.len(),
                    body: self.body(),
                };
            }
            Style::Lines => write_err(&format!("{}\n", self.text(row, &line))),
            Style::Json => tracing::info!(
                import = %self.rows[row].name,
                phase = status.phase.map_or("Starting", Phase::as_str),
                progress = percent(status),
                "{}",
                status_message(status)
            ),
        }
    }

    /// What a terminal redraw writes: back to the first row, then every row, each cleared first.
    pub fn frame(&self) -> String {
        let mut frame = if self.drawn {
            back_to_top(self.rows.len())
        } else {
            String::new()
        };
        frame.push_str(&self.body());
        frame
    }

    /// Every row, each cleared first, the cursor left at the end of the last.
    fn body(&self) -> String {
        let mut frame = String::new();
        let width = match self.style {
            Style::Terminal { width } => width,
            _ => usize::MAX,
        };
        for (index, row) in self.rows.iter().enumerate() {
            if index > 0 {
                frame.push('\n');
            }
            let line = row
                .line
                .clone()
                .unwrap_or_else(|| line(&ImageImportStatus::default()));
            let text = self.text(index, &line);
            frame.push_str("\x1b[2K");
            frame.extend(text.chars().take(width.saturating_sub(1)));
        }
        frame
    }

    /// The row as printed: with its name in front when there are several rows.
    fn text(&self, row: usize, line: &str) -> String {
        if self.rows.len() < 2 {
            return line.to_string();
        }
        let wide = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        format!(
            "{:<wide$}  {line}",
            format!("{}:", self.rows[row].name),
            wide = wide + 1
        )
    }

    /// Ends the drawing: what is said next goes under the rows.
    pub fn close(&mut self) {
        let mut screen = screen();
        if self.drawn {
            write_err("\n");
            self.drawn = false;
        }
        *screen = Screen::default();
    }

    /// A line of its own about `row` (after [`Board::close`]); `trouble` when it tells of
    /// something that did not go as asked.
    pub fn say(&mut self, row: usize, text: &str, trouble: bool) {
        let name = self.rows.get(row).map_or("", |r| r.name.as_str());
        match self.style {
            Style::Json if trouble => tracing::warn!(import = %name, "{text}"),
            Style::Json => tracing::info!(import = %name, "{text}"),
            _ if self.rows.len() > 1 => write_err(&format!("{name}: {text}\n")),
            _ => write_err(&format!("{text}\n")),
        }
    }
}

/// The board as the terminal shows it, for a log line to go above it: a log line written under
/// a drawn board would break its redraw.
#[derive(Debug, Default)]
struct Screen {
    /// Rows on the screen, the cursor at the end of the last; 0 when no board is drawn.
    rows: usize,
    /// What draws them again.
    body: String,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen {
    rows: 0,
    body: String::new(),
});

fn screen() -> std::sync::MutexGuard<'static, Screen> {
    SCREEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// From the end of the last of `rows` rows back to the start of the first.
fn back_to_top(rows: usize) -> String {
    match rows {
        0 | 1 => "\r".to_string(),
        rows => format!("\r\x1b[{}A", rows - 1),
    }
}

/// What goes to the terminal for a log line while `screen` is drawn: the board cleared, the log
/// line, the board again under it.
fn above(screen: &Screen, log: &[u8]) -> Vec<u8> {
    if screen.rows == 0 {
        return log.to_vec();
    }
    let mut out = back_to_top(screen.rows).into_bytes();
    out.extend_from_slice(b"\x1b[J");
    out.extend_from_slice(log);
    out.extend_from_slice(screen.body.as_bytes());
    out
}

/// Standard error for the log: a line logged while a progress board is drawn on the terminal
/// goes above the board, which is drawn again under it; otherwise plain standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log event, written out whole when it is dropped (the log formats an event into one
/// writer, then drops it).
#[derive(Debug)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let screen = screen();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&above(&screen, &self.0));
        let _ = err.flush();
    }
}

fn write_err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// The status's message as a one-shot run says it (no retry promises).
fn status_message(status: &ImageImportStatus) -> String {
    let mut status = status.clone();
    super::report::one_shot_message(&mut status);
    status.message.unwrap_or_default()
}

/// A row: a bar of 20, the percentage, the phase and the message.
fn line(status: &ImageImportStatus) -> String {
    let percent = usize::from(percent(status));
    let filled = percent / 5;
    format!(
        "[{}{}] {percent:>3}% {}: {}",
        "#".repeat(filled),
        " ".repeat(20 - filled),
        status.phase.map_or("Starting", Phase::as_str),
        status_message(status)
    )
}

/// The progress to draw: the import's, then, once the image is available, that of its copies
/// (their mean, a finished copy counting 100).
fn percent(status: &ImageImportStatus) -> u8 {
    let source = status.progress.unwrap_or(0).min(100);
    let copying = status.phase == Some(Phase::Available) && !status.copies.is_empty();
    if !copying {
        return source;
    }
    let sum: usize = status
        .copies
        .iter()
        .map(|copy| match copy.phase {
            Some(Phase::Available) => 100,
            _ => usize::from(copy.progress.unwrap_or(0).min(100)),
        })
        .sum();
    u8::try_from(sum / status.copies.len()).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: Phase, progress: u8) -> ImageImportStatus {
        ImageImportStatus {
            phase: Some(phase),
            progress: Some(progress),
            ..ImageImportStatus::default()
        }
    }

    fn terminal(names: &[&str]) -> Board {
        Board::new(
            names.iter().map(|n| n.to_string()).collect(),
            Style::Terminal { width: 60 },
        )
    }

    #[test]
    fn a_redraw_of_several_rows_goes_back_to_the_first_and_clears_each() {
        let mut board = terminal(&["a", "long-name"]);
        board.rows[0].line = Some(line(&status(Phase::Importing, 50)));
        let first = board.frame();
        assert!(first.starts_with("\x1b[2Ka:"), "{first:?}");
        assert_eq!(first.matches('\n').count(), 1, "{first:?}");
        assert!(first.contains("\n\x1b[2Klong-name:  [ "), "{first:?}");
        board.drawn = true;
        let again = board.frame();
        assert!(again.starts_with("\r\x1b[1A\x1b[2Ka:"), "{again:?}");
    }

    #[test]
    fn a_single_row_redraws_in_place_without_its_name() {
        let mut board = terminal(&["only"]);
        board.drawn = true;
        board.rows[0].line = Some(line(&status(Phase::Available, 100)));
        let frame = board.frame();
        assert_eq!(frame, "\r\x1b[2K[####################] 100% Available: ");
    }

    #[test]
    fn rows_are_cut_at_the_terminal_width_so_none_wraps() {
        let mut board = terminal(&["a", "b"]);
        let mut long = status(Phase::Importing, 10);
        long.message = Some("x".repeat(500));
        board.rows[1].line = Some(line(&long));
        for row in board.frame().split('\n') {
            let shown = row.trim_start_matches("\x1b[2K");
            assert!(shown.chars().count() < 60, "{row:?}");
        }
    }

    #[test]
    fn a_log_line_goes_above_a_drawn_board_which_is_drawn_again_under_it() {
        let screen = Screen {
            rows: 2,
            body: "\x1b[2Ka: row\n\x1b[2Kb: row".into(),
        };
        let out = above(&screen, b"INFO something\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\r\x1b[1A\x1b[JINFO something\n\x1b[2Ka: row\n\x1b[2Kb: row"
        );
        assert_eq!(above(&Screen::default(), b"INFO plain\n"), b"INFO plain\n");
    }

    #[test]
    fn the_bar_shows_the_copies_once_the_image_is_available() {
        let mut available = status(Phase::Available, 100);
        let copy = |phase, progress| crate::api::distribution::CopyStatus {
            region_id: "cn-beijing".into(),
            phase: Some(phase),
            progress: Some(progress),
            ..Default::default()
        };
        available.copies = vec![copy(Phase::Available, 0), copy(Phase::Importing, 0)];
        assert_eq!(percent(&available), 50);
        assert_eq!(percent(&status(Phase::Importing, 30)), 30);
    }
}
