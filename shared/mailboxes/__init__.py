"""Exchange Online mailboxes: waiting for them to exist, then the mailbox work (aliases)."""
