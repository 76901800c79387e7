"""Seats bought through Partner Center for direct resellers: policy, ledger, the buy_seats step."""
