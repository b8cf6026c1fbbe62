# Image for the web, worker and scheduler processes of docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY platform ./platform
COPY plugins ./plugins
COPY dashboards ./dashboards
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --home /app trailseal
USER trailseal
EXPOSE 8000
CMD ["trailseal", "serve", "--host", "0.0.0.0", "--port", "8000"]
