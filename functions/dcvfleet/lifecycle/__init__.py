"""The desktop lifecycle after READY, one module a part: ``idle`` (heartbeats, idle claims and
the idle workflow's steps), ``user_requests`` (a user's stop, resume and delete),
``reconcile`` (changes made outside DCV Fleet, from EC2 and Batch) and ``sweep`` (the fleet
sweep); ``triggers`` holds what they share. Pure of environment and client construction.

One idle workflow execution decides about a session at a time: whoever starts one first claims
the session's ``idle_check`` slot with a versioned write, and every later step writes only while
the slot is still its own. A user's stop or delete takes the slot too, so an idle decision in
flight loses to it. Agent events are claims: nothing is stopped before the session's record, the
instance's real state and a live check on the host (SSM Run Command) agree.
"""
