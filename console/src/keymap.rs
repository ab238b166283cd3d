//! Key tables: every binding as (keys, action, description), grouped in [`Keymap`]s.
//!
//! Each screen contributes its own table (`screens::<name>::KEYMAP`, with its own action
//! type); this module holds the table type and the tables that belong to no screen: the
//! global keys ([`GLOBAL`]) and the command line ([`COMMAND_LINE`]). [`crate::app::update`]
//! dispatches key presses by looking them up in these tables (the active screen's first, then
//! the global one), and the help screen (`?`) is generated from the same tables, so help can
//! never disagree with what a key does.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key (code plus Ctrl/Alt; Shift is implied by the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key code.
    pub code: KeyCode,
    /// Ctrl/Alt modifiers that must be held.
    pub modifiers: KeyModifiers,
}

/// A key without modifiers.
pub const fn plain(code: KeyCode) -> Key {
    Key {
        code,
        modifiers: KeyModifiers::NONE,
    }
}

/// A character key (Shift is part of the character).
pub const fn ch(c: char) -> Key {
    plain(KeyCode::Char(c))
}

/// A character with Ctrl held.
pub const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::CONTROL,
    }
}

impl Key {
    /// Whether a key press is this key (Shift is ignored: it is part of the character).
    pub fn matches(&self, event: &KeyEvent) -> bool {
        let held = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code_matches = match (self.code, event.code) {
            (KeyCode::Char(a), KeyCode::Char(b)) if !self.modifiers.is_empty() => {
                a.eq_ignore_ascii_case(&b)
            }
            (a, b) => a == b,
        };
        code_matches && held == self.modifiers
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if !self.modifiers.is_empty() => {
                write!(f, "{}", c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One binding of a table: keys that trigger an action of type `A`.
#[derive(Debug, Clone, Copy)]
pub struct Binding<A: 'static> {
    /// The keys that trigger it.
    pub keys: &'static [Key],
    /// What it does.
    pub action: A,
    /// What the help screen says.
    pub description: &'static str,
}

/// A binding (for building tables in constants).
pub const fn bind<A>(keys: &'static [Key], action: A, description: &'static str) -> Binding<A> {
    Binding {
        keys,
        action,
        description,
    }
}

impl<A> Binding<A> {
    /// The keys as help shows them (`q, Ctrl-C`).
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(Key::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One table of bindings with its heading in the help screen. Earlier entries win when two
/// match.
#[derive(Debug, Clone, Copy)]
pub struct Keymap<A: 'static> {
    /// The heading of this table in the help screen.
    pub title: &'static str,
    /// The bindings, in help order.
    pub bindings: &'static [Binding<A>],
}

impl<A: Copy> Keymap<A> {
    /// The action bound to `event` in this table.
    pub fn lookup(&self, event: &KeyEvent) -> Option<A> {
        self.bindings
            .iter()
            .find(|b| b.keys.iter().any(|k| k.matches(event)))
            .map(|b| b.action)
    }

    /// This table as the help screen lists it.
    pub fn help(&self) -> HelpSection {
        HelpSection {
            title: self.title,
            entries: self
                .bindings
                .iter()
                .map(|b| HelpEntry {
                    keys: b.keys_label(),
                    description: b.description,
                })
                .collect(),
        }
    }
}

/// One table of the help screen (action types erased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpSection {
    /// Heading.
    pub title: &'static str,
    /// One entry per binding.
    pub entries: Vec<HelpEntry>,
}

/// One line of the help screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpEntry {
    /// The keys (`q, Ctrl-C`).
    pub keys: String,
    /// What they do.
    pub description: &'static str,
}

/// What a global key does (on every screen; not in dialogs or text input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalAction {
    /// Leave the console.
    Quit,
    /// Open the help screen.
    Help,
    /// Open the `:` command line.
    CommandLine,
    /// Show pending games.
    ShowPending,
    /// Show lobby games.
    ShowLobby,
    /// Show active games.
    ShowActive,
    /// Show the event tail.
    ShowEvents,
    /// Show the dead letters.
    ShowDead,
    /// Show the audit stream.
    ShowAudit,
    /// Re-read Redis now.
    RefreshNow,
}

/// The keys that work on every screen (tried after the active screen's table).
pub const GLOBAL: Keymap<GlobalAction> = Keymap {
    title: "Everywhere",
    bindings: &[
        bind(&[ch('q'), ctrl('c')], GlobalAction::Quit, "quit"),
        bind(&[ch('?')], GlobalAction::Help, "this help"),
        bind(
            &[ch(':')],
            GlobalAction::CommandLine,
            "command line: :pending :lobby :active :events :dead :audit :product <name> :q",
        ),
        bind(&[ch('1')], GlobalAction::ShowPending, "pending games"),
        bind(&[ch('2')], GlobalAction::ShowLobby, "lobby games"),
        bind(&[ch('3')], GlobalAction::ShowActive, "active games"),
        bind(&[ch('4'), ch('e')], GlobalAction::ShowEvents, "event tail"),
        bind(&[ch('5')], GlobalAction::ShowDead, "dead letters (:dead)"),
        bind(&[ch('6')], GlobalAction::ShowAudit, "audit stream (:audit)"),
        bind(&[ch('r')], GlobalAction::RefreshNow, "re-read Redis now"),
    ],
};

/// What a key does while a filter or a `:` command is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputAction {
    /// Apply what was typed.
    Submit,
    /// Abandon what was typed.
    Cancel,
    /// Delete the last character.
    Backspace,
    /// Complete a command or product name.
    Complete,
}

/// The keys of the command line (other keys type).
pub const COMMAND_LINE: Keymap<InputAction> = Keymap {
    title: "Filter / command line",
    bindings: &[
        bind(&[plain(KeyCode::Enter)], InputAction::Submit, "apply"),
        bind(
            &[plain(KeyCode::Esc)],
            InputAction::Cancel,
            "cancel (a filter goes back to what it was)",
        ),
        bind(
            &[plain(KeyCode::Backspace)],
            InputAction::Backspace,
            "delete a character (other keys type; filters apply as you type)",
        ),
        bind(
            &[plain(KeyCode::Tab)],
            InputAction::Complete,
            "complete a command, or a product after :product",
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screens::{audit, confirm, dead, detail, events, games, help};

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn ctrl_d_is_not_d() {
        let d = press(KeyCode::Char('d'), KeyModifiers::NONE);
        let ctrl_d = press(KeyCode::Char('d'), KeyModifiers::CONTROL);
        assert_eq!(games::KEYMAP.lookup(&d), Some(games::Action::OpenDetail));
        assert_eq!(
            games::KEYMAP.lookup(&ctrl_d),
            Some(games::Action::ForceDelete)
        );
    }

    #[test]
    fn shifted_letters_match_their_character() {
        let big_g = press(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(games::KEYMAP.lookup(&big_g), Some(games::Action::Bottom));
    }

    #[test]
    fn q_closes_help_but_types_in_text_fields() {
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(GLOBAL.lookup(&q), Some(GlobalAction::Quit));
        assert_eq!(games::KEYMAP.lookup(&q), None, "falls back to global");
        assert_eq!(confirm::KEYMAP.lookup(&q), None, "q types into the reason");
        assert_eq!(help::KEYMAP.lookup(&q), Some(help::Action::Close));
        assert_eq!(COMMAND_LINE.lookup(&q), None, "q types in a text field");
    }

    fn assert_no_key_bound_twice<A>(keymap: &Keymap<A>) {
        for (i, a) in keymap.bindings.iter().enumerate() {
            for b in &keymap.bindings[i + 1..] {
                for key in a.keys {
                    assert!(
                        !b.keys.contains(key),
                        "{key} bound twice in {}",
                        keymap.title
                    );
                }
            }
        }
    }

    #[test]
    fn no_key_is_bound_twice_in_one_table() {
        assert_no_key_bound_twice(&GLOBAL);
        assert_no_key_bound_twice(&COMMAND_LINE);
        assert_no_key_bound_twice(&games::KEYMAP);
        assert_no_key_bound_twice(&events::KEYMAP);
        assert_no_key_bound_twice(&detail::KEYMAP);
        assert_no_key_bound_twice(&confirm::KEYMAP);
        assert_no_key_bound_twice(&help::KEYMAP);
        assert_no_key_bound_twice(&dead::KEYMAP);
        assert_no_key_bound_twice(&audit::KEYMAP);
    }
}
