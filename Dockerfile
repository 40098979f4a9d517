FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY profiles ./profiles
COPY terminology ./terminology
COPY conformance ./conformance
RUN pip install --no-cache-dir .
ENV YIDANG_DATA_DIR=/data
EXPOSE 8080
# Secure by default: on 0.0.0.0 the server refuses to start until authorization is configured.
# Set YIDANG_AUTH=smart (and create a client: `docker exec <container> yidang clients add ...`), or
# YIDANG_AUTH=off to run it open on purpose (warned at every start). TLS: mount a certificate and key and
# set YIDANG_SSL_CERTFILE / YIDANG_SSL_KEYFILE, or terminate TLS at a proxy in front.
CMD ["yidang", "serve", "--host", "0.0.0.0", "--port", "8080"]
