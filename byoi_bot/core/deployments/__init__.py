"""The deployment workflow of SPEC section 2, one module per use case.

`Deployments` (in `core.service`) is what every chat adapter drives. It is assembled from
the use cases here, which share their ports and helpers through `base.Workflow`:

- `asking`: a new request is validated, preflighted, stored and its card posted;
- `cards`: the card's first post queued in the outbox, and how it went;
- `voting`: reactions, approvals, rejections, withdrawals and cancellations;
- `checksums`: an image's checksum verified before it may start;
- `controlling`: change control: may it start now (windows, freezes, emergencies), freezes
  and the reviews of emergency overrides;
- `submitting`: the one destructive call, when due, and its reconciliation;
- `following`: an install's progress read and told in the thread;
- `booting`: after OVHcloud's done, the boot gate (the server must answer before `done`);
- `reading`: finding requests and drawing a card.

None of them imports Slack, HTTP or SQLite; everything arrives through `core.ports`.
"""
