# One image for every role (worker, beat, receiver, sandbox, migrate); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY worker ./worker
COPY webhook_receiver ./webhook_receiver
COPY sandbox ./sandbox
COPY client ./client
COPY migrations ./migrations
RUN pip install --no-cache-dir -e .
USER nobody
