"""degkit."""
