"""Modal dialogs: adjust a wallet, create a key, show a new key once, confirm.

Each dialog dismisses with its answer (or None when cancelled); the view that opened
it does the talking to the gateway. Money is typed in dollars and leaves as integer
micro-USD; anything that moves money asks for a second, explicit yes.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui.common import parse_usd, usd


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, id="question")
            yield Label("[b]y[/b] yes   [b]n[/b] no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AdjustDialog(ModalScreen[tuple[int, str] | None]):
    """Amount and reason, then a confirmation of exactly what will be posted."""
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, account_id: str, account_name: str, available_micros: int) -> None:
        super().__init__()
        self.account_id = account_id
        self.account_name = account_name
        self.available = available_micros

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Adjust wallet of {self.account_name} ({self.account_id})")
            yield Label(f"available ${usd(self.available)}; positive credits, negative "
                        "corrects", classes="hint")
            yield Input(placeholder="amount in USD, e.g. 5 or -1.25", id="amount")
            yield Input(placeholder="reason (required, goes in the ledger)", id="reason")
            yield Static("", id="problem")
            yield Label("[b]enter[/b] next   [b]esc[/b] cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "amount":
            self.query_one("#reason", Input).focus()
            return
        problem = self.query_one("#problem", Static)
        try:
            micros = parse_usd(self.query_one("#amount", Input).value)
        except ValueError as exc:
            problem.update(f"[red]{exc}[/red]")
            self.query_one("#amount", Input).focus()
            return
        reason = self.query_one("#reason", Input).value.strip()
        if micros == 0:
            problem.update("[red]the amount must not be zero[/red]")
            return
        if not reason:
            problem.update("[red]a reason is required[/red]")
            return
        verb = "Credit" if micros > 0 else "Debit"
        question = (f"{verb} ${usd(abs(micros))} {'to' if micros > 0 else 'from'} "
                    f"{self.account_name} ({self.account_id})\nreason: {reason}")

        def decided(yes: bool | None) -> None:
            if yes:
                self.dismiss((micros, reason))
        self.app.push_screen(ConfirmDialog(question), decided)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CreateKeyDialog(ModalScreen[tuple[str, int] | None]):
    """Name and opening credits for a key on a new account."""
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("New key (on a new account)")
            yield Input(placeholder="name", id="name")
            yield Input(placeholder="opening credits in USD (default 0)", id="credits")
            yield Static("", id="problem")
            yield Label("[b]enter[/b] next   [b]esc[/b] cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "name":
            self.query_one("#credits", Input).focus()
            return
        problem = self.query_one("#problem", Static)
        name = self.query_one("#name", Input).value.strip()
        if not name:
            problem.update("[red]a name is required[/red]")
            self.query_one("#name", Input).focus()
            return
        try:
            credits = parse_usd(self.query_one("#credits", Input).value or "0")
        except ValueError as exc:
            problem.update(f"[red]{exc}[/red]")
            return
        if credits < 0:
            problem.update("[red]opening credits cannot be negative[/red]")
            return
        self.dismiss((name, credits))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ShowKeyDialog(ModalScreen[None]):
    """The plaintext key, once: the gateway keeps only its hash."""
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, key: str, key_id: str) -> None:
        super().__init__()
        self.key = key
        self.key_id = key_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Key {self.key_id} created. Copy it now: it is shown only once.")
            yield Input(self.key, id="plaintext")
            yield Label("[b]enter[/b] close", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
