/* http_chunked: the chunked transfer coding's decoder (RFC 9112 7.1; see
 * http_parse.h): a byte-at-a-time state machine over sizes, extensions,
 * data and the trailer section, bounded like the head. */
#include "http_parse_int.h"

#include <string.h>

/* ---- chunked ---- */

enum {
    K_SIZE = 0, K_SIZE_MORE, K_EXT, K_SIZE_LF, K_DATA, K_DATA_CR, K_DATA_LF,
    K_TLINE, K_TNAME, K_TVALUE, K_TVALUE_LF, K_END_LF, K_DONE,
};

void hale_h1_chunked_reset(hale_h1_chunked *c) { memset(c, 0, sizeof *c); }

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 * (RFC 9112 7.1.1): one byte at a time; the CR that ends the line is
 * handled by the caller (ext_may_end). Returns 0, or -1 on a bad byte. */
enum { E_SEMI = 0, E_BWS_NAME, E_NAME, E_BWS_EQ, E_BWS_VAL, E_TOKVAL, E_QUOTED, E_QESC };

static int ext_step(hale_h1_chunked *c, unsigned char ch) {
    int ws = ch == ' ' || ch == '\t';
    switch (c->ext_state) {
    case E_SEMI:  /* after the size or a whole extension */
        if (ws) { c->ext_ws = 1; return 0; }
        if (ch != ';') return -1;
        c->ext_state = E_BWS_NAME;
        return 0;
    case E_BWS_NAME:
        if (ws) return 0;
        if (!IS(ch, C_TCHAR)) return -1;
        c->ext_ws = 0;
        c->ext_state = E_NAME;
        return 0;
    case E_NAME:
        if (IS(ch, C_TCHAR)) return 0;
        if (ws) { c->ext_ws = 1; c->ext_state = E_BWS_EQ; return 0; }
        if (ch == '=') { c->ext_state = E_BWS_VAL; return 0; }
        if (ch == ';') { c->ext_state = E_BWS_NAME; return 0; }
        return -1;
    case E_BWS_EQ:
        if (ws) return 0;
        if (ch == '=') { c->ext_ws = 0; c->ext_state = E_BWS_VAL; return 0; }
        if (ch == ';') { c->ext_ws = 0; c->ext_state = E_BWS_NAME; return 0; }
        return -1;
    case E_BWS_VAL:
        if (ws) return 0;
        c->ext_ws = 0;
        if (ch == '"') { c->ext_state = E_QUOTED; return 0; }
        if (!IS(ch, C_TCHAR)) return -1;
        c->ext_state = E_TOKVAL;
        return 0;
    case E_TOKVAL:
        if (IS(ch, C_TCHAR)) return 0;
        if (ws) { c->ext_ws = 1; c->ext_state = E_SEMI; return 0; }
        if (ch == ';') { c->ext_state = E_BWS_NAME; return 0; }
        return -1;
    case E_QUOTED: /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
        if (ch == '\\') { c->ext_state = E_QESC; return 0; }
        if (ch == '"') { c->ext_state = E_SEMI; c->ext_ws = 0; return 0; }
        return (ws || IS(ch, C_VCHAR)) ? 0 : -1;
    case E_QESC:
        c->ext_state = E_QUOTED;
        return (ws || IS(ch, C_VCHAR)) ? 0 : -1;
    default:
        return -1;
    }
}

/* The size line may end here (a name or a whole value was just read). */
static int ext_may_end(const hale_h1_chunked *c) {
    return c->ext_state == E_NAME || c->ext_state == E_TOKVAL || c->ext_state == E_SEMI;
}

#define CHUNK_BAD(d) (*consumed = i, hale_h1_fail(err, 400, "bad_chunk", d), HALE_H1_CHUNK_ERROR)

hale_h1_chunk_status hale_h1_chunked_feed(hale_h1_chunked *c, const char *in, size_t n,
                                          const hale_h1_limits *lim, size_t *consumed,
                                          size_t *data_off, size_t *data_len,
                                          hale_h1_error *err) {
    size_t i = 0;
    size_t max_line = lim->max_head_bytes;
    while (i < n) {
        unsigned char ch = (unsigned char)in[i];
        if (c->state == K_DATA) {
            size_t take = n - i;
            if (take > c->remaining) take = (size_t)c->remaining;
            *data_off = i;
            *data_len = take;
            c->remaining -= take;
            if (!c->remaining) c->state = K_DATA_CR;
            *consumed = i + take;
            return HALE_H1_CHUNK_DATA;
        }
        if (c->state <= K_SIZE_LF && ++c->line_bytes > max_line) return CHUNK_BAD("a chunk-size line is too long");
        if (c->state >= K_TLINE && c->state <= K_END_LF) {
            if (++c->trailer_bytes > lim->max_head_bytes) {
                *consumed = i;
                hale_h1_fail(err, 431, "headers_too_large", "the trailer section is larger than the limit");
                return HALE_H1_CHUNK_ERROR;
            }
        }
        switch (c->state) {
        case K_SIZE:
        case K_SIZE_MORE:
            if (IS(ch, C_HEX)) {
                if (++c->digits > 15) return CHUNK_BAD("a chunk size has too many digits");
                c->remaining = c->remaining * 16 + (uint64_t)hale_h1_hexval(ch);
                c->state = K_SIZE_MORE;
                break;
            }
            if (c->state == K_SIZE) return CHUNK_BAD("a chunk must start with its size in hex");
            if (ch == '\r') { c->state = K_SIZE_LF; break; }
            c->state = K_EXT;
            c->ext_state = E_SEMI;
            c->ext_ws = 0;
            if (ext_step(c, ch) != 0) return CHUNK_BAD("a chunk extension is malformed");
            break;
        case K_EXT:
            if (ch == '\r') {
                if (c->ext_ws || !ext_may_end(c)) return CHUNK_BAD("a chunk extension is malformed");
                c->state = K_SIZE_LF;
                break;
            }
            if (ext_step(c, ch) != 0) return CHUNK_BAD("a chunk extension is malformed");
            break;
        case K_SIZE_LF:
            if (ch != '\n') return CHUNK_BAD("a chunk-size line must end with CRLF");
            c->line_bytes = 0;
            c->digits = 0;
            c->state = c->remaining ? K_DATA : K_TLINE;
            break;
        case K_DATA_CR:
            if (ch != '\r') return CHUNK_BAD("chunk data must be followed by CRLF");
            c->state = K_DATA_LF;
            break;
        case K_DATA_LF:
            if (ch != '\n') return CHUNK_BAD("chunk data must be followed by CRLF");
            c->state = K_SIZE;
            break;
        case K_TLINE:
            if (ch == '\r') { c->state = K_END_LF; break; }
            if (!IS(ch, C_TCHAR)) return CHUNK_BAD("a trailer field is malformed");
            if (++c->trailer_fields > lim->max_fields) {
                *consumed = i;
                hale_h1_fail(err, 431, "too_many_headers", "the trailer section has more fields than the limit");
                return HALE_H1_CHUNK_ERROR;
            }
            c->state = K_TNAME;
            break;
        case K_TNAME:
            if (IS(ch, C_TCHAR)) break;
            if (ch == ':') { c->state = K_TVALUE; break; }
            return CHUNK_BAD("a trailer field is malformed");
        case K_TVALUE:
            if (ch == '\r') { c->state = K_TVALUE_LF; break; }
            if (ch == ' ' || ch == '\t' || IS(ch, C_VCHAR)) break;
            return CHUNK_BAD("a trailer field value has a control character");
        case K_TVALUE_LF:
            if (ch != '\n') return CHUNK_BAD("a trailer line must end with CRLF");
            c->state = K_TLINE;
            break;
        case K_END_LF:
            if (ch != '\n') return CHUNK_BAD("the chunked body must end with CRLF");
            c->state = K_DONE;
            *consumed = i + 1;
            return HALE_H1_CHUNK_DONE;
        default:
            return CHUNK_BAD("the decoder was called after the body was complete");
        }
        i++;
    }
    *consumed = i;
    return HALE_H1_CHUNK_MORE;
}
