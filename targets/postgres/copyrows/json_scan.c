/* The validating JSON scanner. See copyrows.h. */
#include "copyrows.h"

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(P p, P e) {
    if (e - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0 when it is not valid UTF-8. */
static int utf8_seq(P p, P e) {
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) return (e - p >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (e - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (e - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

static int put_utf8(Buf *b, unsigned int cp) {
    char tmp[4];
    int n;
    if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return buf_put(b, tmp, n);
}

/* Bytes that end a plain run inside a string: quote, backslash, control characters, non-ASCII. */
unsigned char STRING_STOP[256];

void init_tables(void) {
    for (int c = 0; c < 256; c++) STRING_STOP[c] = (c == '"' || c == '\\' || c < 0x20 || c >= 0x80);
}

/*
 * Scan the string starting after its opening quote. With `out`, append its decoded value
 * (COPY-escaped when `copy` is set). Returns the position after the closing quote, or NULL
 * (with *flags) when the string is invalid or holds a NUL; a NUL stops a decode, not a skip.
 */
P scan_string(P p, P e, Buf *out, int copy, int *flags) {
    for (;;) {
        P run = p;
        while (p < e && !STRING_STOP[*p]) p++;
        if (out && p > run && buf_put(out, (const char *)run, p - run) < 0) { *flags = STR_INVALID; return NULL; }
        if (p >= e) { *flags = STR_INVALID; return NULL; }
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20) { *flags = STR_INVALID; return NULL; }
        if (c >= 0x80) {
            int n = utf8_seq(p, e);
            if (!n) { *flags = STR_INVALID; return NULL; }
            if (out && buf_put(out, (const char *)p, n) < 0) { *flags = STR_INVALID; return NULL; }
            p += n;
            continue;
        }
        /* a backslash escape */
        if (e - p < 2) { *flags = STR_INVALID; return NULL; }
        unsigned char x = p[1];
        const char *plain = NULL;
        char one = 0;
        switch (x) {
            case '"': one = '"'; break;
            case '/': one = '/'; break;
            case '\\': one = '\\'; plain = "\\\\"; break;
            case 'b': one = '\b'; break;
            case 'f': one = '\f'; break;
            case 'n': one = '\n'; plain = "\\n"; break;
            case 'r': one = '\r'; plain = "\\r"; break;
            case 't': one = '\t'; plain = "\\t"; break;
            case 'u': break;
            default: *flags = STR_INVALID; return NULL;
        }
        if (x != 'u') {
            if (out) {
                int rc = (copy && plain) ? buf_put(out, plain, 2) : buf_putc(out, one);
                if (rc < 0) { *flags = STR_INVALID; return NULL; }
            }
            p += 2;
            continue;
        }
        int cp = read_hex4(p + 2, e);
        if (cp < 0) { *flags = STR_INVALID; return NULL; }
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int lo = (e - p >= 6 && p[0] == '\\' && p[1] == 'u') ? read_hex4(p + 2, e) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) { *flags = STR_INVALID; return NULL; }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            *flags = STR_INVALID;
            return NULL;
        }
        if (cp == 0) {
            *flags |= STR_HAS_NUL;
            if (out) return NULL; /* the decoded path applies the NUL policy */
            continue;
        }
        if (out) {
            int rc;
            if (copy && cp == '\\') rc = buf_put(out, "\\\\", 2);
            else if (copy && cp == '\n') rc = buf_put(out, "\\n", 2);
            else if (copy && cp == '\r') rc = buf_put(out, "\\r", 2);
            else if (copy && cp == '\t') rc = buf_put(out, "\\t", 2);
            else rc = put_utf8(out, (unsigned int)cp);
            if (rc < 0) { *flags = STR_INVALID; return NULL; }
        }
    }
}

/* True when the number's text is past the largest double (orjson refuses it as infinite). */
static int overflows_double(P start, P end) {
    char text[64];
    if (end - start >= (Py_ssize_t)sizeof(text)) return 1; /* a long spelling near the limit: not ours */
    memcpy(text, start, (size_t)(end - start));
    text[end - start] = 0;
    double v = PyOS_string_to_double(text, NULL, NULL); /* locale-independent, correctly rounded */
    if (v == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 1; }
    return Py_IS_INFINITY(v);
}

P scan_number(P p, P e, int *nflags) {
    P start = p;
    Py_ssize_t int_digits = 0, frac_digits = 0, lead_zeros = 0, exponent = 0;
    int nonzero = 0;
    *nflags = 0;
    if (p < e && *p == '-') p++;
    if (p >= e) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') {
        P digits = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        int_digits = p - digits;
        nonzero = 1;
        if (int_digits > 18) *nflags |= NUM_BIG;
    } else return NULL;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        P digits = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        frac_digits = p - digits;
        if (!nonzero) {
            while (digits + lead_zeros < p && digits[lead_zeros] == '0') lead_zeros++;
            nonzero = digits + lead_zeros < p;
        }
        *nflags |= NUM_FRACTION;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        int negative = p < e && *p == '-';
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        /* Saturated: 10^9 is past any double either way, and past any line's count of digits. */
        for (; p < e && *p >= '0' && *p <= '9'; p++)
            exponent = exponent < 100000000 ? exponent * 10 + (*p - '0') : 1000000000;
        if (negative) exponent = -exponent;
        *nflags |= NUM_FRACTION;
    }
    if (p - start == 2 && start[0] == '-' && start[1] == '0') *nflags |= NUM_NEG_ZERO; /* only the integer -0 */
    /* numeric and jsonb refuse more than 16383 digits after the point (1e-16384), where the decoded
       value is a float, 0.0 or not: leave it to the decoded path. */
    if (frac_digits - exponent > 16383) return NULL;
    if (nonzero) {
        /* The value is 0.d... times 10^magnitude, d not 0. orjson refuses a number a double cannot
           hold (1e400) where the server would store it in numeric or jsonb: such a line is not ours. */
        Py_ssize_t magnitude = (int_digits ? int_digits : -lead_zeros) + exponent;
        if (magnitude > 309 || (magnitude == 309 && overflows_double(start, p))) return NULL;
        if (magnitude < -306) *nflags |= NUM_TINY;
    }
    return p;
}

P scan_literal(P p, P e, const char *word, Py_ssize_t n) {
    return (e - p >= n && memcmp(p, word, (size_t)n) == 0) ? p + n : NULL;
}

/* Validate any JSON value; *nul is set when a string in it holds \u0000. */
P skip_value(P p, P e, int depth, int *nul) {
    if (p >= e || depth > MAX_DEPTH) return NULL;
    int flags = 0, nflags;
    switch (*p) {
        case '"':
            p = scan_string(p + 1, e, NULL, 0, &flags);
            if (flags & STR_HAS_NUL) *nul = 1;
            return p;
        case '{':
            p = skip_ws(p + 1, e);
            if (p < e && *p == '}') return p + 1;
            for (;;) {
                if (p >= e || *p != '"') return NULL;
                flags = 0;
                p = scan_string(p + 1, e, NULL, 0, &flags);
                if (!p) return NULL;
                if (flags & STR_HAS_NUL) *nul = 1;
                p = skip_ws(p, e);
                if (p >= e || *p != ':') return NULL;
                p = skip_value(skip_ws(p + 1, e), e, depth + 1, nul);
                if (!p) return NULL;
                p = skip_ws(p, e);
                if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
                if (p < e && *p == '}') return p + 1;
                return NULL;
            }
        case '[':
            p = skip_ws(p + 1, e);
            if (p < e && *p == ']') return p + 1;
            for (;;) {
                p = skip_value(p, e, depth + 1, nul);
                if (!p) return NULL;
                p = skip_ws(p, e);
                if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
                if (p < e && *p == ']') return p + 1;
                return NULL;
            }
        case 't': return scan_literal(p, e, "true", 4);
        case 'f': return scan_literal(p, e, "false", 5);
        case 'n': return scan_literal(p, e, "null", 4);
        default: return scan_number(p, e, &nflags);
    }
}
