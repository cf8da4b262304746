"""rail-django management commands and the code behind them."""
