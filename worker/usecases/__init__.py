"""Use-cases: the verbs of Nurture, each built from the narrow ports it needs.

``intake`` (create or update a lead, enrol it, record an event), ``by_hand`` (pause, resume,
cancel, unsubscribe, finish a task), ``inbound`` (one message in: classify, match, act,
record), ``suppress`` (the one "this address is dead" consequence) and ``notify`` (mail to
people on our side). They import ``worker.domain`` and ``worker.ports``, never an adapter or
``worker.app``: the composition root hands each its collaborators.
"""
