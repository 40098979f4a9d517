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
CMD ["yidang", "serve", "--host", "0.0.0.0", "--port", "8080"]
