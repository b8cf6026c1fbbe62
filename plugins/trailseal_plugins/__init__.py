"""First-party Trailseal plugins, registered through entry points exactly like third-party ones."""
