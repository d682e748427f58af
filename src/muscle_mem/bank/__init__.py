"""The memory bank: what an agent did and learned, beside its behavior cache.

bank = MemoryBank("sqlite:///agent.db")     # the store an Engine uses
campaign = bank.entity("campaign", "summer", name="Summer 2024", brand="voyage")
bank.snapshot(campaign, {"ctr": 3.0, "cpc": 4.0}, analysis="strong creative")
act = bank.action(campaign, "audience", "widen to 25-45", expected={"ctr": 0.15})
bank.outcome(act, actual={"ctr": 0.05})      # fell short: bank.shortfalls()
bank.learn("brand:voyage", "creative_insight", "video beats image by 60%")
print(bank.brief("brand:voyage"))
"""

from ..errors import BankError, BankImportError, UnknownEntityError, UnknownRecordError
from .bank import MemoryBank
from .model import Action, Decision, Entity, Learning, Recalled, Snapshot, Trend

__all__ = [
    "Action",
    "BankError",
    "BankImportError",
    "Decision",
    "Entity",
    "Learning",
    "MemoryBank",
    "Recalled",
    "Snapshot",
    "Trend",
    "UnknownEntityError",
    "UnknownRecordError",
]
