"""Preprocessors that nbgrader_config.py plugs into nbgrader (0.9.x).

ShortTestTracebacks -- feedback: a failed test cell shows its error, not a
    traceback, which would quote the test's source (hidden tests included).
ExecuteUntilStuck -- autograde: once a cell has timed out and the kernel does
    not come back from the interrupt (a loop that catches KeyboardInterrupt),
    the remaining cells are marked as not run instead of each waiting out the
    full per-cell timeout on a kernel that will never answer.
"""
from __future__ import annotations

from queue import Empty
from time import monotonic

from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

from nbclient.util import ensure_async, run_sync


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


class ShortTestTracebacks(NbGraderPreprocessor):
    """Cut the traceback of a failed test cell to its last line.

    Even after ClearHiddenTests removes the hidden tests from the source,
    IPython's traceback quotes the lines around the failure, hidden ones
    included. The learner keeps the error type and the check's message, which
    says what went wrong; the instructor's autograded copy keeps everything.
    """

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources


class ExecuteUntilStuck(Execute):
    """nbgrader's Execute, but a kernel stuck after a timeout ends the run early.

    After a cell times out nbclient interrupts the kernel and moves on. If the
    learner's code swallowed the interrupt, the kernel is still busy: every
    later cell would wait the whole timeout (120 s each) and fail anyway. So
    after a timeout we ask the kernel for its info on the shell channel, which
    it answers only once the interrupted cell has ended; no answer within
    ``stuck_grace`` seconds marks the remaining code cells as not run (scored
    0, with a message saying why). Settings of ``c.Execute`` apply here too.
    """

    stuck_grace = Integer(
        30, help="Seconds a kernel may take to come back from a timeout's interrupt."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._stuck_after = None  # index of the cell whose loop would not stop
        return super().preprocess(nb, resources, km=km)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if self._stuck_after is not None and cell.cell_type == "code" and cell.source.strip():
            cell.outputs = [new_output(
                "error", ename="KernelStuck",
                evalue=(f"not run: the kernel is still busy with cell {self._stuck_after}, "
                        "which ran past the time limit and ignored the interrupt "
                        "(does a loop catch KeyboardInterrupt, or use a bare except?)"),
                traceback=[])]
            cell.outputs[0].traceback = [f"KernelStuck: {cell.outputs[0].evalue}"]
            return cell
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        timed_out = any(out.output_type == "error" and out.get("ename") == self.error_on_timeout["ename"]
                        for out in cell.get("outputs", []))
        if timed_out and not await self._kernel_answers(self.stuck_grace):
            self.log.error("Kernel still busy %s s after interrupting cell %s: "
                           "the remaining cells are not run", self.stuck_grace, cell_index)
            self._stuck_after = cell_index
        return cell

    # nbclient binds the synchronous wrapper to the base class's coroutine;
    # rebind it, or the override above is never called.
    execute_cell = run_sync(async_execute_cell)

    async def _kernel_answers(self, wait: float) -> bool:
        """Whether the kernel answers a kernel_info request within ``wait`` s."""
        msg_id = self.kc.kernel_info()
        deadline = monotonic() + wait
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False
