"""Tell people: reminders, failure, success and probe-alert messages, calendar invitations."""
