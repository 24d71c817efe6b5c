"""Reference clients: the phone library, the health-authority client and the population simulator."""
