"""A player's request for a job this worker does not hold (handover.py): taken over, or sent on."""
from flask import redirect, request

from . import context
from .jobs import Unaccepted, carry_out, error


def take_over_or_send_on(job_id, name, number=None):
    """None when the job is (now) here: the request goes on as any other. Else its answer: a
    redirect to the worker that holds the job, or why it cannot be served now. `number`: the
    segment asked for, where a job taken over starts its run."""
    ctx = context()
    handover = ctx.handover
    if handover is None or ctx.manager.get(job_id) is not None:
        return None
    with handover.turn(job_id):
        if ctx.manager.get(job_id) is not None:  # taken by the request that asked before this one
            return None
        if ctx.manager.closing:  # (a full worker still asks: its player may be sent to the holder)
            return error(503, "the worker is shutting down", retry_after=1)
        answer = handover.ask(job_id)
        if answer.kind == "unknown":
            return None  # (a 404, as for any name of no job)
        if answer.kind == "elsewhere":
            query = request.query_string.decode("latin-1")
            return redirect(f"{answer.url}/{name}" + (f"?{query}" if query else ""), code=307)
        if answer.kind == "unanswered":
            return error(503, f"job {job_id} is not on this worker and {answer.message}", retry_after=1)
        try:
            carry_out(answer.command, at_segment=number)
        except Unaccepted as exc:
            handover.release(job_id, str(exc))
            return exc.response
        return None
