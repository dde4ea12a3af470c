"""The review page: trame-slicer's views and segment editor, with OrganSeg's case list, volume table, Save and
exports.

trame-slicer's own `SegmentationApp` loads files the browser uploads; this app instead opens the cases of
PATH (`cases`), on the same logic classes (segment editor with undo/redo, volume properties, layouts).
Every action answers in one line on the page (`message`); an OrganSegError never stops the server. A CT
without results shows an organ checklist instead of the editor: Segment runs the library off the event loop
(`segment_ct`), with a progress bar, and then opens the result like any other.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

import SimpleITK as sitk
from aiohttp import web
from trame.app import TrameApp, asynchronous
from trame.widgets import html
from trame.widgets.vuetify3 import (
    Template,
    VBtn,
    VCheckbox,
    VChip,
    VDivider,
    VNavigationDrawer,
    VProgressLinear,
    VSelect,
    VSlider,
    VTable,
)
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic.layout_button_logic import LayoutButtonLogic
from trame_slicer.app.logic.mpr_interaction_button_logic import MprInteractionButtonLogic
from trame_slicer.app.logic.segmentation import SegmentEditorLogic
from trame_slicer.app.logic.volume_property_logic import VolumePropertyLogic
from trame_slicer.app.ui import (
    ControlButton,
    LayoutButton,
    MprInteractionButton,
    SegmentEditorToolbarUI,
    SegmentEditorUI,
    SegmentEditorUndoRedoUI,
    ViewerLayout,
    VolumePropertyUI,
)
from trame_slicer.core import SlicerApp
from trame_slicer.rca_view import register_rca_factories

from organseg.ct.read import read_ct
from organseg.errors import OrganSegError
from organseg.method.inference import Cancelled
from organseg.results.result import Progress
from organseg.review.cases import Case
from organseg.review.scene import add_ct
from organseg.review.segment_ct import devices, organ_choices, segment_case
from organseg.review.session import CaseSession

log = logging.getLogger(__name__)


class ReviewApp(TrameApp):
    """One server, one scene: the case shown is replaced when another is opened."""

    def __init__(self, root: Path, cases: list[Case], server=None) -> None:
        super().__init__(server)
        self.server.enable_module(trame_slicer_module)
        self.root, self.cases = root, cases
        self.session: CaseSession | None = None
        self._leaving_to: int | None = None  #: the case asked for while the open one has unsaved edits
        self._started = False  #: whether the first case was opened (for the first page that connected)
        self._cancel = False  #: Cancel was pressed during a segmentation (read by its worker thread)
        self._ct: sitk.Image | None = None  #: the CT shown without results, which Segment segments
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.editor = SegmentEditorLogic(self.server, self.slicer)
        self.volume_properties = VolumePropertyLogic(self.server, self.slicer)
        self.layouts = LayoutButtonLogic(self.server, self.slicer)
        self.mpr = MprInteractionButtonLogic(self.server, self.slicer)
        self.state.update({
            "trame__title": "OrganSeg review",
            "cases": _case_items(cases),
            "case_index": 0, "rows": [], "skipped": [], "message": "", "message_kind": "info",
            "to_segment": False, "organ_choices": organ_choices(), "chosen_organs": [], "devices": devices(),
            "busy": False, "progress": 0, "progress_text": "",
        })
        self.state.device = self.state.devices[0]
        self._build_ui()
        self.server.controller.on_server_bind.add(lambda wslink_server: wslink_server.app.middlewares.append(
            _same_origin_only))
        self.server.controller.on_client_connected.add(self._first_client)

    def _first_client(self) -> None:
        """Open the first case once the first page connects: state changed before then reaches a page only in its
        initial copy, which trame's record of what the page holds does not see (a later change back to the
        value it had at start-up would never be sent)."""
        if not self._started:
            self._started = True
            with self.state:
                self._run(self._open, self.state.case_index)

    # --- actions -----------------------------------------------------------------------------------------

    def _run(self, action: Callable, *args) -> None:
        """Run a page action; its error becomes the page's one-line message (the server carries on)."""
        try:
            message = action(*args)
            self.state.update({"message": message or "", "message_kind": "success"})
        except Exception as err:
            self._report(err)

    def _report(self, err: Exception) -> None:
        """An action's error as the page's message (called in its `except`)."""
        if not isinstance(err, OrganSegError):  # a bug must not take the reviewer's unsaved edits down with it
            log.exception("review action failed")
        text = str(err) if isinstance(err, OrganSegError) else f"unexpected error: {type(err).__name__}: {err}"
        self.state.update({"message": text, "message_kind": "error"})

    def choose(self, case_index: int) -> None:
        """Open the chosen case; with unsaved edits, stay and say so first (choosing it again discards them)."""
        case_index = int(case_index)
        if self.state.busy:
            self.state.update({"message": "a segmentation is running; choose the case once it is done",
                               "message_kind": "warning", "case_index": self.state.case_index})
            return
        if self.session is not None and self.session.case is self.cases[case_index]:
            return
        if self.session is not None and self._leaving_to != case_index:
            edited = self.session.edited()
            if edited:
                self._leaving_to = case_index
                self.state.update({"message": f"{self.session.case.name}: unsaved edits to {', '.join(edited)}; "
                                              "Save them, or choose the case again to discard them",
                                   "message_kind": "warning"})
                return
        self._leaving_to = None
        self.state.case_index = case_index
        self._run(self._open, case_index)

    def _open(self, index: int) -> str:
        case = self.cases[index]
        self.session = None
        self.state.update({"rows": [], "skipped": [], "to_segment": False})
        self.slicer.scene.Clear()  # also what lets Paint activate on a scene filled from Python
        if not case.segmented:
            return self._open_ct(case)
        session = CaseSession.open(self.slicer, self.root, case)
        self.session = session
        self.slicer.display_manager.show_volume(session.volume, do_reset_views=True)
        self.editor.on_volume_changed(session.volume)
        self.volume_properties.on_volume_changed(session.volume)
        self.slicer.volume_rendering.get_vr_display_node(session.volume).SetVisibility(False)  # 3D: the organs
        self.ui.typed_state.data.is_drawer_visible = True
        self.ui.typed_state.data.active_tool = SegmentEditorUI.__name__
        self.state.skipped = [f"{name}: {why}" for name, why in session.skipped.items()]
        self.editor.segmentation_editor.set_surface_representation_enabled(True)
        session.centre_views()
        self._table()
        return f"{case.name}: {len(session.organs)} organs" + (f", {len(session.skipped)} mask(s) left out"
                                                              if session.skipped else "")

    def _open_ct(self, case: Case) -> str:
        """A CT without results: the CT alone in the views, the organ checklist in the panel."""
        self._ct = read_ct(Path(case.source))
        volume = add_ct(self.slicer.scene, self._ct, case.name)
        self.slicer.display_manager.show_volume(volume, do_reset_views=True)
        self.volume_properties.on_volume_changed(volume)
        self.slicer.volume_rendering.get_vr_display_node(volume).SetVisibility(False)
        self.state.to_segment = True
        return f"{case.name}: not segmented yet; tick the organs and Segment (results go into {case.folder})"

    def segment(self) -> None:
        """Segment the open CT with the ticked organs; the page stays live and shows the progress."""
        index = self.state.case_index
        if self.state.busy or self.cases[index].segmented:
            return
        if not self.state.chosen_organs:
            self.state.update({"message": "no organ ticked; tick the organs to segment", "message_kind": "error"})
            return
        self.state.update({"busy": True, "progress": 0, "progress_text": "reading the CT",
                           "message": "", "message_kind": "info"})
        asynchronous.create_task(self._segment(index, list(self.state.chosen_organs), self.state.device))

    async def _segment(self, index: int, organs: list[str], device: str) -> None:
        loop = asyncio.get_running_loop()
        self._cancel = False

        def report(p: Progress) -> None:  # called on the worker thread
            loop.call_soon_threadsafe(self._show_progress, p)

        try:
            case = await loop.run_in_executor(None, segment_case, self.cases[index], self._ct, organs, device,
                                              report, lambda: self._cancel)
        except Cancelled:
            with self.state:
                self.state.update({"busy": False, "message": "segmentation cancelled; nothing was written",
                                   "message_kind": "warning"})
            return
        except Exception as err:
            with self.state:
                self.state.busy = False
                self._report(err)
            return
        with self.state:
            self.cases[index] = case
            self.state.cases = _case_items(self.cases)
            self.state.busy = False
            self._ct = None
            self._run(self._open_segmented, index, organs)

    def _open_segmented(self, index: int, organs: list[str]) -> str:
        opened = self._open(index)
        added = [key for key in self._require_session().organs if key not in organs]
        return opened + (f" ({', '.join(added)} added: anchor organs for post-processing)" if added else "")

    def cancel(self) -> None:
        """Stop the running segmentation at its next batch of slices."""
        self._cancel = True
        self.state.progress_text = "cancelling"

    def _show_progress(self, p: Progress) -> None:
        with self.state:
            done = p.index if p.stage == "done" else p.index - 1
            self.state.progress = round(100 * done / p.total)
            self.state.progress_text = (f"{p.organ.display_name} ({p.index}/{p.total})" if p.stage != "done"
                                        else f"{done} of {p.total} organs done")

    def _table(self) -> str:
        self.state.rows = self._require_session().table()
        return "volumes recomputed"

    def _require_session(self) -> CaseSession:
        if self.session is None:
            raise OrganSegError("no case is open")
        return self.session

    def recompute(self) -> None:
        self._run(self._table)

    def save(self) -> None:
        self._run(lambda: self._require_session().save())

    def export(self, kind: str) -> None:
        self._run(lambda: self._require_session().export(kind))

    def set_opacity(self, organ_key: str, opacity: float) -> None:
        self._run(lambda: self._require_session().set_opacity(organ_key, float(opacity)))

    def step(self, delta: int) -> None:
        self.choose((self.state.case_index + delta) % len(self.cases))

    # --- page --------------------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        with ViewerLayout(self.server, title="OrganSeg review") as self.ui:
            self.ui.root.theme = "dark"
            with self.ui.drawer:
                editor_ui = SegmentEditorUI(v_if=(self._is_tool(SegmentEditorUI),))
                volume_ui = VolumePropertyUI(v_if=(self._is_tool(VolumePropertyUI),))
            self.editor.set_ui(editor_ui)
            self.volume_properties.set_ui(volume_ui)
            with self.ui.appbar:
                self._case_bar()
            with self.ui.toolbar:
                self._tool_button("mdi-layers-edit", "Segment editor", SegmentEditorUI)
                self._tool_button("mdi-tune-variant", "Volume properties", VolumePropertyUI)
                self.layouts.set_ui(LayoutButton(classes="mt-1"))
                mpr_button = MprInteractionButton(classes="mt-1")
                self.mpr.set_ui(mpr_button)
                SegmentEditorToolbarUI(editor_ui=editor_ui)
            with self.ui.undo_redo:
                SegmentEditorUndoRedoUI(editor_ui=editor_ui)
            with self.ui.content:
                self.layouts.layout_manager.initialize_layout_grid(self.ui)
            with VNavigationDrawer(location="right", permanent=True, width=470, classes="pa-2"):
                self._review_panel()

    def _tool_button(self, icon: str, name: str, tool: type) -> None:
        layout = self.ui.typed_state

        def toggle() -> None:
            show = not layout.data.is_drawer_visible or layout.data.active_tool != tool.__name__
            layout.data.is_drawer_visible = show
            layout.data.active_tool = tool.__name__ if show else None

        ControlButton(icon=icon, name=name, click=toggle, classes="mt-1", active=(self._is_tool(tool),))

    def _is_tool(self, tool: type) -> str:
        return f"{self.ui.typed_state.name.active_tool} === '{tool.__name__}'"

    def _case_bar(self) -> None:
        VBtn(icon="mdi-chevron-left", click=lambda: self.step(-1), title="Previous case", id="previous-case",
             disabled=("cases.length < 2",))
        VSelect(model_value=("case_index",), update_modelValue=(self.choose, "[$event]"), items=("cases",),
                density="compact", hide_details=True, style="max-width: 420px;", id="case-select",
                label="Case (flagged first)")
        VBtn(icon="mdi-chevron-right", click=lambda: self.step(1), title="Next case", id="next-case",
             disabled=("cases.length < 2",))

    def _review_panel(self) -> None:
        with html.Div(v_if=("to_segment",), id="segment-panel"):
            self._segment_panel()
        with html.Div(v_else=True):
            self._result_panel()

    def _segment_panel(self) -> None:
        html.Div("Organs to segment", classes="text-subtitle-2")
        with html.Div(v_for="region in [...new Set(organ_choices.map(o => o.region))]", key="region",
                      classes="mb-1"):
            html.Div("{{ region }}", classes="text-caption text-medium-emphasis text-capitalize")
            VCheckbox(v_for="item in organ_choices.filter(o => o.region === region)", key="item.organ",
                      v_model=("chosen_organs",), value=("item.organ",), label=("item.name",),
                      id=("`organ-${item.organ}`",), density="compact", hide_details=True,
                      disabled=("busy",))
        with html.Div(classes="d-flex align-center ga-2 my-2"):
            VSelect(v_model=("device",), items=("devices",), label="Device", density="compact", hide_details=True,
                    style="max-width: 140px;", disabled=("busy",), id="device")
            VBtn("Segment", click=self.segment, id="segment", color="primary", prepend_icon="mdi-play",
                 disabled=("busy || !chosen_organs.length",))
        VProgressLinear(v_if=("busy",), model_value=("progress",), height=8, color="primary", classes="mb-1",
                        id="progress")
        with html.Div(v_if=("busy",), classes="d-flex align-center ga-2 mb-2"):
            html.Div("{{ progress_text }}", classes="text-body-2", id="progress-text")
            VBtn("Cancel", click=self.cancel, id="cancel-segment", size="small", variant="tonal")
        _message_line()

    def _result_panel(self) -> None:
        with html.Div(classes="d-flex flex-wrap ga-1 mb-2"):
            VBtn("Recompute", click=self.recompute, id="recompute", size="small", prepend_icon="mdi-calculator")
            VBtn("Save", click=self.save, id="save", size="small", color="primary", prepend_icon="mdi-content-save")
        with html.Div(classes="d-flex flex-wrap ga-1 mb-2"):
            for kind, label in (("rtstruct", "RTSTRUCT"), ("dicom-seg", "DICOM SEG"), ("seg-nrrd", ".seg.nrrd")):
                VBtn(f"Export {label}", click=(self.export, f"['{kind}']"), id=f"export-{kind}", size="small",
                     variant="tonal")
        _message_line()
        html.Div("Left out: {{ item }}", v_for="item in skipped", classes="text-body-2 text-warning skipped")
        VDivider(classes="my-2")
        with VTable(density="compact", id="volume-table"):
            with html.Thead(), html.Tr():
                for title in ("Organ", "mL", "opened mL", "flags", "opacity"):
                    html.Th(title)
            with html.Tbody(), html.Tr(v_for="row in rows", key="row.organ", classes=("`organ-${row.organ}`",)):
                with html.Td():
                    VChip("{{ row.name }}", color=("row.colour",), size="small", label=True)
                html.Td("{{ row.volume_ml }}", classes="volume")
                html.Td("{{ row.opened_ml }}")
                with html.Td():
                    with Template(v_for="flag in row.flags"):
                        VChip("{{ flag.code }}", title=("flag.reason",), color="warning", size="x-small",
                              classes="flag")
                with html.Td(style="min-width: 90px;"):
                    VSlider(model_value=("row.opacity",), min=0, max=1, step=0.1, hide_details=True, density="compact",
                            end=(self.set_opacity, "[row.organ, $event]"))


@web.middleware
async def _same_origin_only(request: web.Request, handler):
    """Refuse requests a page from another site makes (browsers send its Origin, also on WebSocket upgrades):
    otherwise any web page the reviewer has open could drive Save and the exports on 127.0.0.1."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text=f"requests from {origin} are refused")
    return await handler(request)


def _message_line() -> None:
    """The page's one-line answer to the last action."""
    html.Div("{{ message }}", id="message", classes=("`text-body-2 mb-2 text-${message_kind}`",),
             style="word-break: break-word;")


def _case_items(cases: list[Case]) -> list[dict]:
    return [{"title": _case_title(c), "value": i} for i, c in enumerate(cases)]


def _case_title(case: Case) -> str:
    if case.problem:
        return f"{case.name} (cannot open)"
    if not case.segmented:
        return f"{case.name} - not segmented"
    flagged = f" - flagged: {', '.join(case.flagged_organs)}" if case.flagged_organs else ""
    return case.name + flagged
