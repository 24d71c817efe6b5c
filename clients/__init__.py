"""Reference clients: the phone library, the health-authority client and the population simulator."""

import matcher  # noqa: F401  (first, before grpc: it quiets grpcio's own C-core log lines)
