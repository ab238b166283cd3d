//! The one key table: every binding as (context, keys, action, description).
//!
//! [`crate::app::update`] dispatches key presses by looking them up here, and the help screen
//! (`?`) is generated from the same table, so help can never disagree with what a key does.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies. `Global` bindings apply on every screen (not in dialogs or text
/// input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Every screen.
    Global,
    /// The games table (pending, lobby, active).
    Games,
    /// The event tail.
    Events,
    /// One game's detail.
    Detail,
    /// The force-delete confirmation dialog.
    Confirm,
    /// Typing a filter or a `:` command.
    Input,
    /// The help screen.
    Help,
}

impl Context {
    /// The heading of this context in the help screen.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Games => "Games table",
            Context::Events => "Event tail",
            Context::Detail => "Game detail",
            Context::Confirm => "Delete dialog",
            Context::Input => "Filter / command line",
            Context::Help => "Help",
        }
    }

    /// Every context, in help order.
    pub const ALL: [Context; 7] = [
        Context::Global,
        Context::Games,
        Context::Events,
        Context::Detail,
        Context::Confirm,
        Context::Input,
        Context::Help,
    ];
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the console.
    Quit,
    /// Open the help screen.
    Help,
    /// Open the `:` command line.
    CommandLine,
    /// Start typing a filter for the current screen.
    Filter,
    /// Show pending games.
    ShowPending,
    /// Show lobby games.
    ShowLobby,
    /// Show active games.
    ShowActive,
    /// Show the event tail.
    ShowEvents,
    /// Next product.
    NextProduct,
    /// Previous product.
    PrevProduct,
    /// Selection up one row.
    Up,
    /// Selection down one row.
    Down,
    /// One page up.
    PageUp,
    /// One page down.
    PageDown,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Toggle sort key (activity / age).
    ToggleSort,
    /// Reverse the sort direction.
    ReverseSort,
    /// Open the selected game's detail.
    OpenDetail,
    /// Force-delete the selected game (asks first).
    ForceDelete,
    /// Re-read Redis now.
    RefreshNow,
    /// Back to the previous screen / clear the filter.
    Back,
    /// Event tail: follow new events or pause.
    ToggleFollow,
    /// Dialog: move focus between Cancel and Delete.
    SwitchButton,
    /// Dialog: press the focused button.
    PressButton,
    /// Dialog: cancel.
    CancelDialog,
    /// Input: apply what was typed.
    Submit,
    /// Input: abandon what was typed.
    CancelInput,
    /// Input: delete the last character.
    Backspace,
    /// Help: close.
    CloseHelp,
}

/// One key (code plus Ctrl/Alt; Shift is implied by the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key code.
    pub code: KeyCode,
    /// Ctrl/Alt modifiers that must be held.
    pub modifiers: KeyModifiers,
}

const fn plain(code: KeyCode) -> Key {
    Key {
        code,
        modifiers: KeyModifiers::NONE,
    }
}

const fn ch(c: char) -> Key {
    plain(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
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

/// One binding of the table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Where it applies.
    pub context: Context,
    /// The keys that trigger it.
    pub keys: &'static [Key],
    /// What it does.
    pub action: Action,
    /// What the help screen says.
    pub description: &'static str,
}

const fn bind(
    context: Context,
    keys: &'static [Key],
    action: Action,
    description: &'static str,
) -> Binding {
    Binding {
        context,
        keys,
        action,
        description,
    }
}

use Action as A;
use Context as C;

/// Every key binding of the console. Earlier entries win when two match.
pub const KEYMAP: &[Binding] = &[
    // Dialog and input first: they capture keys that mean something else on screens.
    bind(
        C::Confirm,
        &[
            plain(KeyCode::Tab),
            plain(KeyCode::BackTab),
            plain(KeyCode::Left),
            plain(KeyCode::Right),
            ch('h'),
            ch('l'),
        ],
        A::SwitchButton,
        "move focus between Cancel and Delete",
    ),
    bind(
        C::Confirm,
        &[plain(KeyCode::Enter)],
        A::PressButton,
        "press the focused button (Cancel is focused first)",
    ),
    bind(
        C::Confirm,
        &[plain(KeyCode::Esc), ch('n'), ch('q')],
        A::CancelDialog,
        "cancel",
    ),
    bind(C::Input, &[plain(KeyCode::Enter)], A::Submit, "apply"),
    bind(C::Input, &[plain(KeyCode::Esc)], A::CancelInput, "cancel"),
    bind(
        C::Input,
        &[plain(KeyCode::Backspace)],
        A::Backspace,
        "delete a character (other keys type)",
    ),
    bind(
        C::Help,
        &[plain(KeyCode::Esc), ch('?'), ch('q')],
        A::CloseHelp,
        "close help",
    ),
    bind(C::Global, &[ch('q'), ctrl('c')], A::Quit, "quit"),
    bind(C::Global, &[ch('?')], A::Help, "this help"),
    bind(
        C::Global,
        &[ch(':')],
        A::CommandLine,
        "command line: :pending :lobby :active :events :q",
    ),
    bind(C::Global, &[ch('1')], A::ShowPending, "pending games"),
    bind(C::Global, &[ch('2')], A::ShowLobby, "lobby games"),
    bind(C::Global, &[ch('3')], A::ShowActive, "active games"),
    bind(C::Global, &[ch('4'), ch('e')], A::ShowEvents, "event tail"),
    bind(C::Global, &[ch('r')], A::RefreshNow, "re-read Redis now"),
    bind(
        C::Games,
        &[ch('/')],
        A::Filter,
        "filter (substring of id, product, creator, server)",
    ),
    bind(
        C::Games,
        &[ch('p'), plain(KeyCode::Tab)],
        A::NextProduct,
        "next product",
    ),
    bind(
        C::Games,
        &[ch('P'), plain(KeyCode::BackTab)],
        A::PrevProduct,
        "previous product",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::Up), ch('k')],
        A::Up,
        "select previous game",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::Down), ch('j')],
        A::Down,
        "select next game",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::PageUp), ctrl('u')],
        A::PageUp,
        "page up",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::PageDown), ctrl('f')],
        A::PageDown,
        "page down",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::Home), ch('g')],
        A::Top,
        "first game",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::End), ch('G')],
        A::Bottom,
        "last game",
    ),
    bind(
        C::Games,
        &[ch('s')],
        A::ToggleSort,
        "sort by last activity / by age",
    ),
    bind(C::Games, &[ch('o')], A::ReverseSort, "reverse sort order"),
    bind(
        C::Games,
        &[plain(KeyCode::Enter), ch('d')],
        A::OpenDetail,
        "detail of the selected game",
    ),
    bind(
        C::Games,
        &[ctrl('d')],
        A::ForceDelete,
        "force-delete the selected game (asks first)",
    ),
    bind(
        C::Games,
        &[plain(KeyCode::Esc)],
        A::Back,
        "clear the filter",
    ),
    bind(
        C::Events,
        &[ch('/')],
        A::Filter,
        "filter events (substring of any field)",
    ),
    bind(
        C::Events,
        &[ch('f'), ch(' ')],
        A::ToggleFollow,
        "follow new events / pause",
    ),
    bind(
        C::Events,
        &[plain(KeyCode::Up), ch('k')],
        A::Up,
        "scroll up (pauses)",
    ),
    bind(
        C::Events,
        &[plain(KeyCode::Down), ch('j')],
        A::Down,
        "scroll down",
    ),
    bind(
        C::Events,
        &[plain(KeyCode::Esc)],
        A::Back,
        "clear the filter, back to games",
    ),
    bind(
        C::Detail,
        &[ctrl('d')],
        A::ForceDelete,
        "force-delete this game (asks first)",
    ),
    bind(
        C::Detail,
        &[plain(KeyCode::Esc), plain(KeyCode::Backspace)],
        A::Back,
        "back to the games table",
    ),
];

/// The action bound to `event` in `context` (or, for screens, in [`Context::Global`]).
pub fn lookup(context: Context, event: &KeyEvent) -> Option<Action> {
    let screen = matches!(context, Context::Games | Context::Events | Context::Detail);
    let find = |ctx: Context| {
        KEYMAP
            .iter()
            .find(|b| b.context == ctx && b.keys.iter().any(|k| k.matches(event)))
            .map(|b| b.action)
    };
    find(context).or_else(|| if screen { find(Context::Global) } else { None })
}

/// The keys of a binding as help shows them (`q, Ctrl-C`).
pub fn keys_label(binding: &Binding) -> String {
    binding
        .keys
        .iter()
        .map(Key::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn screen_bindings_fall_back_to_global() {
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(lookup(Context::Games, &q), Some(Action::Quit));
        assert_eq!(lookup(Context::Confirm, &q), Some(Action::CancelDialog));
        assert_eq!(lookup(Context::Input, &q), None, "q types in a text field");
    }

    #[test]
    fn ctrl_d_is_not_d() {
        let d = press(KeyCode::Char('d'), KeyModifiers::NONE);
        let ctrl_d = press(KeyCode::Char('d'), KeyModifiers::CONTROL);
        assert_eq!(lookup(Context::Games, &d), Some(Action::OpenDetail));
        assert_eq!(lookup(Context::Games, &ctrl_d), Some(Action::ForceDelete));
    }

    #[test]
    fn shifted_letters_match_their_character() {
        let big_g = press(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(Context::Games, &big_g), Some(Action::Bottom));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                if a.context != b.context {
                    continue;
                }
                for key in a.keys {
                    assert!(
                        !b.keys.contains(key),
                        "{key} bound twice in {:?}",
                        a.context
                    );
                }
            }
        }
    }
}
