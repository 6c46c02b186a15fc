"""Command-palette (Ctrl-P) commands beyond the app's actions: "known" finds the known
Sc57M13 phase of the dopant and shows it (Detail: predictions and ranks per limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from textual.command import DiscoveryHit, Hit, Provider


class KnownPhaseCommands(Provider):
    """Jump to the known Sc57M13 phase (`action_known` of the app)."""

    def _command(self) -> tuple[str, str]:
        dopant = getattr(self.app, "dopant", "") or "M"
        return (
            f"Known phase Sc57{dopant}13",
            "Show the known phase in Detail: predictions and rank per limit",
        )

    async def discover(self) -> AsyncIterator[DiscoveryHit]:
        name, help_text = self._command()
        yield DiscoveryHit(name, self._jump, help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        name, help_text = self._command()
        matcher = self.matcher(query)
        score = matcher.match(name)
        if score > 0:
            yield Hit(score, matcher.highlight(name), self._jump, help=help_text)

    async def _jump(self) -> None:
        await self.app.run_action("known")
