"""OVHcloud adapter: API client factory, BYOI providers and error explanations."""
