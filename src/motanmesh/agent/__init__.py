"""The mesh agent: client-side router, server-side dispatcher and providers, management API,
lifecycle."""
