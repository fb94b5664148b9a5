"""The core: requests, states, approval policy and ports. No Slack, no HTTP, no SQLite."""
