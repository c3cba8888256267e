"""Helpers of the fault-injection tests (tests/integration/test_fault_*.py):
a connection-cutting proxy, small scriptable POP3/IMAP servers, and the
bookkeeping that turns a fault run into lost / duplicated / partial counts."""
